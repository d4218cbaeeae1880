"""The presized-image and token-id caches trust only bytes they can prove they wrote, on real data.

Each damage below is one a disk, a copy or a killed process can do: it keeps the file's size, or parses fine,
so only a checksum written with the file catches it. Every damaged entry must be rebuilt with a warning
naming the file, and the loaders rebuilt on it must serve exactly what a fresh cache in another folder serves.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import pipekit.datasets as D
from pipekit.data import (CategoryBlock, ColReader, ColSplitter, DataBlock, GrandparentSplitter, get_image_files,
                          parent_label)
from pipekit.text import TextBlock
from pipekit.vision import ImageBlock, build_image_store, decode_image

DROP = object()


# ---------------------------------------------------------------------------------------------- helpers
def mnist_dls(cache: Path):
    block = DataBlock(blocks=(ImageBlock(cls="L", cache_dir=cache), CategoryBlock),
                      get_items=lambda p: get_image_files(p, folders=["train", "valid"]), get_y=parent_label,
                      splitter=GrandparentSplitter())
    return block.dataloaders(D.path("mnist_tiny"), bs=64, seed=0, num_workers=0)


def served_pixels(dls) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every cached image, the source sizes, and the first validation batch as the loader gives it."""
    store = dls.train.dataset.stores[0]
    return store.gather(np.arange(len(store))).numpy(), store.orig_sizes.copy(), dls.valid.one_batch()[0].numpy()


def assert_same_pixels(dls, ref) -> None:
    got, want = served_pixels(dls), served_pixels(ref)
    assert got[0].shape == want[0].shape == (1408, 28, 28, 1)
    for g, w in zip(got, want):
        assert np.array_equal(g, w)


@pytest.fixture(scope="module")
def imdb() -> pl.DataFrame:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv")


def imdb_dls(imdb: pl.DataFrame, cache: Path):
    block = DataBlock(blocks=(TextBlock.from_df("text", cache_dir=cache), CategoryBlock), get_x=ColReader("text"),
                      get_y=ColReader("label"), splitter=ColSplitter("is_valid"))
    return block.dataloaders(imdb, bs=32, seed=0, num_workers=0)


def assert_same_ids(dls, ref) -> None:
    assert dls.blocks[0].from_cache_ is False  # rebuilt, not served from the damaged entry
    assert dls.blocks[0].vocab == ref.blocks[0].vocab
    assert dls.train.dataset.stores[0].ids.equals(ref.train.dataset.stores[0].ids)
    assert np.array_equal(dls.valid.one_batch()[0].numpy(), ref.valid.one_batch()[0].numpy())


def flip_byte(path: Path, offset: int, mask: int = 0x5A) -> None:
    """Change one byte in place: the file keeps its size, its name and its modification time order."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ mask]))
    assert path.stat().st_size == size


def edit_meta(path: Path, field: str, value: object = DROP, by_pipekit: bool = False) -> None:
    """Rewrite a JSON meta file dropping ``field`` or setting it to ``value``: as a hand edit would, or through
    pipekit's own writer (``by_pipekit``: its checksum is right, so only the check of the content can object)."""
    obj = json.loads(path.read_text())
    target = obj["data"] if isinstance(obj.get("data"), dict) else obj
    if value is DROP:
        del target[field]
    else:
        target[field] = value
    if by_pipekit:
        from pipekit.data.cache import atomic_write_json

        atomic_write_json(path, target)
    else:
        path.write_text(json.dumps(obj))


def no_cache_warning(build):
    """``build()``, failing when it warns about a cache file."""
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        out = build()
    assert not [str(w.message) for w in log if "cache file" in str(w.message)]
    return out


def one_pack(cache: Path) -> Path:
    packs = sorted((cache / "images").rglob("*.npy"))
    assert len(packs) == 1
    return packs[0]


# ---------------------------------------------------------------------------------------------- image packs
def test_sec_one_changed_byte_in_an_image_pack_is_caught_and_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    dls = mnist_dls(cache)
    pack = dls.train.dataset.stores[0].path_
    assert pack == one_pack(cache)
    good = np.load(pack)
    header = pack.stat().st_size - good.nbytes
    item, y, x = 1000, 14, 14  # the middle of a validation digit
    flip_byte(pack, header + item * 28 * 28 + y * 28 + x)
    damaged = np.load(pack)  # NumPy reads the damaged pack without complaint: only a checksum can tell
    assert damaged.shape == good.shape and damaged[item, y, x, 0] != good[item, y, x, 0]

    with pytest.warns(UserWarning, match=re.escape(str(pack))) as record:
        again = mnist_dls(cache)
    assert any("checksum" in str(w.message) for w in record)
    assert again.train.dataset.stores[0].n_decoded_ == 1408  # nothing was copied from the damaged pack
    assert_same_pixels(again, mnist_dls(tmp_path / "fresh"))
    assert np.array_equal(np.load(one_pack(cache)), good)  # the pack on disk is whole again
    again_again = no_cache_warning(lambda: mnist_dls(cache))
    assert again_again.train.dataset.stores[0].n_reused_ == 1408  # and trusted on the next open


@pytest.mark.parametrize("field, value, by_pipekit, said", [
    ("orig_sizes", DROP, False, "orig_sizes"), ("shape", "28x28", False, "shape"), ("checksum", DROP, False, "checksum"),
    ("orig_sizes", [[28, 28]], False, "checksum"),  # right type, wrong content: the meta's own checksum objects
    ("orig_sizes", [[28, 28]], True, "orig_sizes"), ("shape", [1408, 28, 28, 3], True, "shape")])
def test_sec_image_meta_missing_a_field_or_of_a_wrong_type_is_rebuilt(tmp_path, field, value, by_pipekit, said):
    cache = tmp_path / "cache"
    pack = mnist_dls(cache).train.dataset.stores[0].path_
    edit_meta(pack.with_suffix(".json"), field, value, by_pipekit)
    with pytest.warns(UserWarning, match=re.escape(str(pack))) as record:
        again = mnist_dls(cache)
    assert any(said in str(w.message) for w in record)
    assert_same_pixels(again, mnist_dls(tmp_path / "fresh"))


@pytest.mark.parametrize("damage", ["pack cut short", "pack grown", "pack emptied", "meta cut short",
                                    "meta missing"])
def test_sec_truncated_or_resized_image_pack_is_rebuilt(tmp_path, damage):
    cache = tmp_path / "cache"
    pack = mnist_dls(cache).train.dataset.stores[0].path_
    meta = pack.with_suffix(".json")
    if damage == "pack cut short":
        os.truncate(pack, pack.stat().st_size - 28 * 28 * 3)
    elif damage == "pack grown":
        with open(pack, "ab") as f:
            f.write(bytes(28 * 28))
    elif damage == "pack emptied":
        os.truncate(pack, 0)
    elif damage == "meta cut short":
        os.truncate(meta, meta.stat().st_size // 2)
    else:
        meta.unlink()
    with pytest.warns(UserWarning, match=re.escape(str(pack))):
        again = mnist_dls(cache)
    assert_same_pixels(again, mnist_dls(tmp_path / "fresh"))


def test_sec_a_damaged_pack_is_not_copied_into_a_new_one(tmp_path):
    """Rebuilding after one file changed copies the other images from the old pack: only from a verified one."""
    files = sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:40]
    work = tmp_path / "imgs"
    work.mkdir()
    for f in files:
        (work / f.name).write_bytes(f.read_bytes())
    paths = sorted(work.glob("*.png"))
    first = build_image_store(paths, None, mode="L", cache_dir=tmp_path / "cache")
    good = first.gather(np.arange(40)).numpy()
    pack = first.path_
    flip_byte(pack, pack.stat().st_size - 20 * 28 * 28 + 14 * 28 + 14)  # image 20, a stroke pixel or background
    seven = sorted((D.path("mnist_tiny") / "train" / "7").glob("*.png"))[0]
    paths[3].write_bytes(seven.read_bytes())
    with pytest.warns(UserWarning, match=re.escape(str(pack))):
        rebuilt = build_image_store(paths, None, mode="L", cache_dir=tmp_path / "cache")
    assert rebuilt.n_decoded_ == 40
    want = np.stack([decode_image(p, mode="L") for p in paths])
    assert np.array_equal(rebuilt.gather(np.arange(40)).numpy(), want)
    assert np.array_equal(np.delete(want, 3, 0), np.delete(good, 3, 0))


def test_sec_a_hand_edited_index_never_gives_an_image_another_ones_pixels(tmp_path):
    """The index says which slot of which pack holds each file's pixels; an edit swapping two slots keeps it
    valid JSON of the right shape, so only its own checksum can object."""
    work = tmp_path / "imgs"
    work.mkdir()
    for f in sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:40]:
        (work / f.name).write_bytes(f.read_bytes())
    paths = sorted(work.glob("*.png"))
    first = build_image_store(paths, None, mode="L", cache_dir=tmp_path / "cache")
    index_path = first.path_.with_name("index.json")
    obj = json.loads(index_path.read_text())
    index = obj["data"] if isinstance(obj.get("data"), dict) else obj
    by_slot = {slot: key for key, (_, slot) in index.items()}
    index[by_slot[5]][1], index[by_slot[6]][1] = 6, 5
    index_path.write_text(json.dumps(obj))
    paths[3].write_bytes(sorted((D.path("mnist_tiny") / "train" / "7").glob("*.png"))[0].read_bytes())
    with pytest.warns(UserWarning, match=re.escape(str(index_path))):
        rebuilt = build_image_store(paths, None, mode="L", cache_dir=tmp_path / "cache")
    want = np.stack([decode_image(p, mode="L") for p in paths])
    assert not np.array_equal(want[5], want[6])
    assert np.array_equal(rebuilt.gather(np.arange(40)).numpy(), want)


# ---------------------------------------------------------------------------------------------- token ids
def ids_values_offset(path: Path) -> int:
    """Where the int32 token ids start inside the Arrow IPC file (read zero-copy from the file's bytes)."""
    data = pa.py_buffer(path.read_bytes())
    ids = pa.ipc.open_file(pa.BufferReader(data)).read_all().column("ids").chunk(0)
    return ids.values.buffers()[1].address - data.address


def read_ids(path: Path) -> np.ndarray:
    return pa.ipc.open_file(pa.BufferReader(pa.py_buffer(path.read_bytes()))).read_all().column(
        "ids").combine_chunks().values.to_numpy()


def ids_file(cache: Path) -> Path:
    files = sorted(cache.rglob("ids.arrow"))
    assert len(files) == 1
    return files[0]


def test_sec_one_changed_byte_in_the_token_cache_is_caught_and_rebuilt(imdb, tmp_path):
    cache = tmp_path / "cache"
    imdb_dls(imdb, cache)
    path = ids_file(cache)
    good = read_ids(path)
    pos = len(good) // 2
    flip_byte(path, ids_values_offset(path) + 4 * pos, mask=0x01)  # the low byte: a neighbouring, valid word id
    damaged = read_ids(path)  # Arrow reads the damaged file without complaint: only a checksum can tell
    assert len(damaged) == len(good) and (damaged != good).sum() == 1 and abs(int(damaged[pos]) - int(good[pos])) == 1

    with pytest.warns(UserWarning, match=re.escape(str(path))) as record:
        again = imdb_dls(imdb, cache)
    assert any("checksum" in str(w.message) for w in record)
    assert_same_ids(again, imdb_dls(imdb, tmp_path / "fresh"))
    assert np.array_equal(read_ids(ids_file(cache)), good)
    assert no_cache_warning(lambda: imdb_dls(imdb, cache)).blocks[0].from_cache_ is True


@pytest.mark.parametrize("field, value", [("tok_state", DROP), ("vocab", DROP), ("vocab", "xxunk xxpad"),
                                          ("ids_checksum", DROP), ("tok_state", [1, 2])])
def test_sec_token_meta_missing_a_field_or_of_a_wrong_type_is_rebuilt(imdb, tmp_path, field, value):
    cache = tmp_path / "cache"
    imdb_dls(imdb, cache)
    path = ids_file(cache)
    edit_meta(path.with_name("meta.json"), field, value)
    with pytest.warns(UserWarning, match=re.escape(str(path))) as record:
        again = imdb_dls(imdb, cache)
    assert any(field in str(w.message) for w in record)
    assert_same_ids(again, imdb_dls(imdb, tmp_path / "fresh"))


@pytest.mark.parametrize("damage", ["ids cut short", "ids grown", "meta cut short", "meta missing"])
def test_sec_truncated_token_cache_is_rebuilt(imdb, tmp_path, damage):
    cache = tmp_path / "cache"
    imdb_dls(imdb, cache)
    path = ids_file(cache)
    meta = path.with_name("meta.json")
    if damage == "ids cut short":
        os.truncate(path, path.stat().st_size // 2)
    elif damage == "ids grown":
        with open(path, "ab") as f:
            f.write(bytes(64))
    elif damage == "meta cut short":
        os.truncate(meta, meta.stat().st_size - 10)
    else:
        meta.unlink()
    with pytest.warns(UserWarning, match=re.escape(str(path))):
        again = imdb_dls(imdb, cache)
    assert_same_ids(again, imdb_dls(imdb, tmp_path / "fresh"))


# ---------------------------------------------------------------------------------------------- killed builds
BUILD = """
import sys
from pipekit.vision import build_image_store
store = build_image_store(sys.argv[2:], None, mode="L", cache_dir=sys.argv[1], num_workers=2)
print(len(store), store.path_)
"""


def start_build(cache: Path, paths: list[Path]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUILD, str(cache), *map(str, paths)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PIPEKIT_QUIET": "1"})


def temps_of(cache: Path, pid: int) -> list[Path]:
    return [f for f in (cache / "images").glob("*/*") if f".{pid}." in f.name]


def wait_for_temp(cache: Path, proc: subprocess.Popen, timeout: float = 120) -> Path:
    """The temporary pack ``proc`` is writing (it blocks reading its last file, a named pipe)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = temps_of(cache, proc.pid)
        if found:
            return found[0]
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    raise AssertionError("the build never started writing its pack")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes to hold a build mid-write")
def test_sec_killed_image_build_leaves_no_temp_but_a_live_build_keeps_its_own(tmp_path):
    cache = tmp_path / "cache"
    files = sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:200]
    blocked = {}
    procs = []
    try:
        for who in ("live", "killed"):
            # the build's last file is a named pipe: the build writes its pack and then waits on that file
            fifo = tmp_path / f"{who}.png"
            os.mkfifo(fifo)
            proc = start_build(cache, files[:150] + [fifo])
            procs.append(proc)
            blocked[who] = (proc, fifo, wait_for_temp(cache, proc))
        killed, _, killed_temp = blocked["killed"]
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert killed_temp.exists()  # what a killed build leaves behind
        live, live_fifo, live_temp = blocked["live"]
        # one left by a build that stopped writing hours ago, under a pid that is alive (ours)
        old_temp = live_temp.with_name(live_temp.name.replace(f".{live.pid}.", f".{os.getpid()}."))
        old_temp.write_bytes(live_temp.read_bytes()[:4096])
        hours_ago = time.time() - 7 * 3600
        os.utime(old_temp, (hours_ago, hours_ago))

        store = build_image_store(files[150:], None, mode="L", cache_dir=cache)  # the next build
        assert len(store) == 50
        assert not killed_temp.exists() and not old_temp.exists()
        assert live_temp.exists()  # the live build is still writing it

        # let the live build finish: its pack is committed whole, and trusted by the next open
        fd = os.open(live_fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, files[150].read_bytes())
        os.close(fd)
        out, err = live.communicate(timeout=180)
        assert live.returncode == 0, err
        assert out.split()[0] == "151" and not live_temp.exists()
        again = no_cache_warning(lambda: build_image_store(files[:151], None, mode="L", cache_dir=cache))
        assert again.n_reused_ == 151 and str(again.path_) == out.split()[1]
        want = np.stack([decode_image(p, mode="L") for p in files[:151]])
        assert np.array_equal(again.gather(np.arange(151)).numpy(), want)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_sec_stale_token_temps_are_removed_but_a_live_writers_are_kept(imdb, tmp_path):
    from pipekit.data.cache import temp_name

    cache = tmp_path / "cache"
    imdb_dls(imdb, cache)
    folder = ids_file(cache).parent
    partial = ids_file(cache).read_bytes()[:100_000]
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    killed = folder / temp_name("ids", pid=dead_pid)  # a build killed while writing its ids
    killed.write_bytes(partial)
    elsewhere = cache / "text" / "0123abcd" / temp_name("meta.json", pid=dead_pid)  # in another entry's folder
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b'{"sha256":')
    abandoned = folder / temp_name("ids")  # a live pid (ours), but untouched for 7 hours
    abandoned.write_bytes(partial)
    hours_ago = time.time() - 7 * 3600
    os.utime(abandoned, (hours_ago, hours_ago))
    writing = folder / temp_name("ids")  # a live pid, being written now
    writing.write_bytes(partial)

    again = imdb_dls(imdb, cache)
    assert again.blocks[0].from_cache_ is True
    assert not killed.exists() and not elsewhere.exists() and not abandoned.exists()
    assert writing.exists() and writing.read_bytes() == partial


@pytest.mark.parametrize("edit", ["tokenizer state", "a token twice", "fewer texts"])
def test_sec_token_entries_written_right_but_not_for_this_column_are_rebuilt(imdb, tmp_path, edit):
    """Entries whose checksums are right (written through pipekit's own writer) but which this column and
    tokenizer cannot use: a tokenizer state it refuses failed the build naming the first review, a token listed
    twice changed the batches silently, the tokens of 59 texts for 60 failed on the stores' lengths."""
    from pipekit.text.store import load_cached, save_cached

    small = pl.concat([imdb.filter(~pl.col("is_valid")).head(45), imdb.filter(pl.col("is_valid")).head(15)])
    cache = tmp_path / "cache"
    imdb_dls(small, cache)
    path = ids_file(cache)
    meta = path.with_name("meta.json")
    if edit == "tokenizer state":
        edit_meta(meta, "tok_state", {"units_": "letters"}, by_pipekit=True)
    elif edit == "a token twice":
        vocab = json.loads(meta.read_text())["data"]["vocab"]
        edit_meta(meta, "vocab", [*vocab[:-1], vocab[0]], by_pipekit=True)
    else:
        tokens, fields = load_cached(path.parent, len(small))
        kept = tokens.offsets[59]
        short = type(tokens)(tokens.vocab, np.asarray(tokens.ids[:kept]), np.asarray(tokens.offsets[:60]))
        save_cached(path.parent, short, {k: v for k, v in fields.items() if k != "ids_checksum"})
    with pytest.warns(UserWarning, match=re.escape(str(path.parent))):
        again = imdb_dls(small, cache)
    assert_same_ids(again, imdb_dls(small, tmp_path / "fresh"))
