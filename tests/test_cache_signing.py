"""The caches serve only entries this user's pipekit signed, with the layout pipekit writes, on real data.

Whoever else can write a cache folder (a shared PIPEKIT_CACHE, a folder copied from someone) can recompute a plain
checksum; the entries below are forged that way, or signed under another user's key, and each must be rebuilt with
a warning naming the file, the data served being what the source files hold. Each test has its own key file
(PIPEKIT_CACHE_KEY_FILE under tmp_path) and starts without a key read, as a new process does.
"""
from __future__ import annotations

import io
import os
import stat
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import pipekit.data.cache as cache_mod
import pipekit.datasets as D
from pipekit.data.cache import (STREAM_RECORD, CacheEntryError, CacheRebuildWarning, CacheWriteWarning, ChecksumWriter,
                                PackChecksum, atomic_write_json, read_json, verify_pack)
from pipekit.text import TextBlock
from pipekit.vision import build_image_store, decode_image

NOT_OURS = "not written by this user's pipekit"


@pytest.fixture(autouse=True)
def user_key(tmp_path, monkeypatch) -> Path:
    """This test's user: a key file of its own, not read yet (as in a new process)."""
    path = tmp_path / "config" / "user.key"
    monkeypatch.setenv("PIPEKIT_CACHE_KEY_FILE", str(path))
    monkeypatch.setattr(cache_mod, "_KEYS", {})
    return path


def new_process(monkeypatch) -> None:
    """Forget the keys read so far, as the next run of pipekit starts without them."""
    monkeypatch.setattr(cache_mod, "_KEYS", {})


class other_user:
    """Inside the block, pipekit signs with another user's key (someone else writing the shared cache folder)."""

    def __init__(self, tmp_path: Path):
        self.key = tmp_path / "other" / "other.key"

    def __enter__(self) -> None:
        self.saved = os.environ["PIPEKIT_CACHE_KEY_FILE"]
        os.environ["PIPEKIT_CACHE_KEY_FILE"] = str(self.key)

    def __exit__(self, *exc: object) -> None:
        os.environ["PIPEKIT_CACHE_KEY_FILE"] = self.saved


def threes(n: int) -> list[Path]:
    return sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:n]


def copied_threes(tmp_path: Path, n: int) -> list[Path]:
    """``n`` of mnist_tiny's 3s copied to a folder of their own (so a test may change one)."""
    work = tmp_path / "imgs"
    work.mkdir()
    for f in threes(n):
        (work / f.name).write_bytes(f.read_bytes())
    return sorted(work.glob("*.png"))


def decoded(paths) -> np.ndarray:
    return np.stack([decode_image(p, mode="L") for p in paths])[..., None]


def build(paths, cache: Path):
    return build_image_store(paths, None, mode="L", cache_dir=cache)


def quiet(fn):
    """``fn()``, failing on any cache warning."""
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        out = fn()
    said = [str(w.message) for w in log if issubclass(w.category, (CacheRebuildWarning, CacheWriteWarning))]
    assert not said
    return out


def meta_parts(meta_path: Path, field: str) -> tuple[dict, dict]:
    """The checksum record stored in ``field`` of a meta file, and the rest of that meta."""
    meta = read_json(meta_path)
    record = meta.pop(field)
    return record, meta


def stream_record(data: bytes, dest: Path, meta: dict, record_len: int = STREAM_RECORD) -> dict:
    """A checksum record of ``data`` made with pipekit's own writer, signed with the current key."""
    sink = ChecksumWriter(io.BytesIO(), record_len=record_len)
    sink.write(data)
    return sink.checksum(dest, meta)


@pytest.fixture(scope="module")
def imdb() -> pl.DataFrame:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv")


def tokens_of(texts: pl.Series, cache: Path | bool) -> tuple[TextBlock, object]:
    block = TextBlock.from_df("text", cache_dir=cache)
    return block, block.setup(texts, np.arange(len(texts)))


def entry_ids(cache: Path) -> Path:
    files = sorted((cache / "text").glob("*/ids.arrow"))
    assert len(files) == 1
    return files[0]


# ---------------------------------------------------------------------------------------------- layout (record size)
def test_an_image_record_naming_one_byte_records_is_refused_before_the_pack_is_read(tmp_path):
    cache = tmp_path / "cache"
    paths = threes(200)
    pack = build(paths, cache).path_
    record, meta = meta_parts(pack.with_suffix(".json"), "checksum")
    assert (record["header_len"], record["record_len"]) == (128, 28 * 28)
    # the same bytes, hashed one byte a record by pipekit's own writer and signed with this user's key: every
    # later open would hash the pack byte by byte (32 bytes of digests per byte of pack)
    forged = stream_record(pack.read_bytes(), pack, meta, record_len=1)
    assert (forged["header_len"], forged["record_len"]) == (0, 1)
    atomic_write_json(pack.with_suffix(".json"), {**meta, "checksum": forged})

    # refused from the record alone: even where there is no pack to read
    reason = verify_pack(tmp_path / "nothing.npy", forged, header_len=128, record_len=784, meta=meta)
    assert reason is not None and "records of 1" in reason and "records of 784" in reason
    start = time.process_time()  # CPU time: a busy machine does not count
    with pytest.warns(CacheRebuildWarning, match=str(pack)) as record_log:
        again = build(paths, cache)
    assert time.process_time() - start < 5
    assert any("records of 1," in str(w.message) for w in record_log)
    assert again.n_decoded_ == 200
    assert np.array_equal(again.gather(np.arange(200)).numpy()[..., None], decoded(paths))
    assert quiet(lambda: build(paths, cache)).n_reused_ == 200


def test_a_token_record_naming_one_byte_records_is_refused(imdb, tmp_path):
    cache = tmp_path / "cache"
    texts = imdb["text"].head(60)
    tokens_of(texts, cache)
    path = entry_ids(cache)
    record, meta = meta_parts(path.with_name("meta.json"), "ids_checksum")
    assert (record["header_len"], record["record_len"]) == (0, STREAM_RECORD)
    forged = stream_record(path.read_bytes(), path, meta, record_len=1)
    atomic_write_json(path.with_name("meta.json"), {**meta, "ids_checksum": forged})
    with pytest.warns(CacheRebuildWarning, match=str(path)) as log:
        block, store = tokens_of(texts, cache)
    assert any(f"records of 1, where this pack has a header of 0 bytes and records of {STREAM_RECORD}"
               in str(w.message) for w in log)
    assert block.from_cache_ is False
    assert store.ids.equals(tokens_of(texts, False)[1].ids)


# ---------------------------------------------------------------------------------------------- signatures
def test_pixels_forged_and_signed_with_another_key_are_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    paths = threes(200)
    pack = build(paths, cache).path_
    _, meta = meta_parts(pack.with_suffix(".json"), "checksum")
    # someone else inverts every pixel and signs the pack the way pipekit does, with their own key
    pixels = np.load(pack)
    header = pack.read_bytes()[:pack.stat().st_size - pixels.nbytes]
    inverted = 255 - pixels
    with other_user(tmp_path):
        forged = PackChecksum(header, 28 * 28, 200)
        for i in range(200):
            forged.add(i, np.ascontiguousarray(inverted[i]))
        record = forged.result(pack, meta)
    pack.write_bytes(header + inverted.tobytes())
    atomic_write_json(pack.with_suffix(".json"), {**meta, "checksum": record})

    with pytest.warns(CacheRebuildWarning, match=str(pack)) as log:
        again = build(paths, cache)
    assert any(NOT_OURS in str(w.message) for w in log)
    assert again.n_decoded_ == 200
    assert np.array_equal(again.gather(np.arange(200)).numpy()[..., None], decoded(paths))
    assert quiet(lambda: build(paths, cache)).n_reused_ == 200


@pytest.mark.parametrize("forger", ["meta saved again", "signed with another key"])
def test_a_token_entry_with_good_and_bad_swapped_is_rebuilt(imdb, tmp_path, forger):
    cache = tmp_path / "cache"
    texts = imdb["text"].head(200)
    tokens_of(texts, cache)
    path = entry_ids(cache)
    record, meta = meta_parts(path.with_name("meta.json"), "ids_checksum")
    vocab = meta["vocab"]
    a, b = vocab.index("good"), vocab.index("bad")
    vocab[a], vocab[b] = vocab[b], vocab[a]  # every 'good' of the corpus would read 'bad', and back
    if forger == "signed with another key":
        with other_user(tmp_path):
            record = stream_record(path.read_bytes(), path, meta)
    atomic_write_json(path.with_name("meta.json"), {**meta, "ids_checksum": record})

    with pytest.warns(CacheRebuildWarning, match=str(path)) as log:
        block, store = tokens_of(texts, cache)
    assert any(NOT_OURS in str(w.message) for w in log)
    assert block.from_cache_ is False
    i = next(i for i, t in enumerate(texts) if " good " in t and " bad " not in t and "bad" not in t.lower())
    words = [block.vocab[j] for j in store.item(i).tolist()]
    assert words.count("good") >= 1 and words.count("bad") == 0
    assert store.ids.equals(tokens_of(texts, False)[1].ids)


def test_a_token_entry_copied_under_another_columns_name_is_rebuilt(imdb, tmp_path):
    """Entries are signed with their name: a genuine entry of 60 reviews does not serve 60 other reviews."""
    cache = tmp_path / "cache"
    first, second = imdb["text"].slice(0, 60), imdb["text"].slice(60, 60)
    tokens_of(first, cache)
    mine = entry_ids(cache).parent
    tokens_of(second, tmp_path / "elsewhere")
    theirs = cache / "text" / entry_ids(tmp_path / "elsewhere").parent.name
    theirs.mkdir()
    for name in ("meta.json", "ids.arrow"):
        (theirs / name).write_bytes((mine / name).read_bytes())

    with pytest.warns(CacheRebuildWarning, match=str(theirs / "ids.arrow")) as log:
        block, store = tokens_of(second, cache)
    assert any(NOT_OURS in str(w.message) for w in log)
    assert block.from_cache_ is False
    assert store.ids.equals(tokens_of(second, False)[1].ids)


def test_an_index_saved_again_with_two_slots_swapped_never_swaps_two_images(tmp_path):
    """The index is not signed: a slot serves a file only when the signed pack lists the file's key there."""
    paths = copied_threes(tmp_path, 40)
    cache = tmp_path / "cache"
    index_path = build(paths, cache).path_.with_name("index.json")
    index = read_json(index_path)
    by_slot = {slot: key for key, (_, slot) in index.items()}
    index[by_slot[5]][1], index[by_slot[6]][1] = 6, 5
    atomic_write_json(index_path, index)  # the index's own checksum is right: it is not keyed
    paths[3].write_bytes(sorted((D.path("mnist_tiny") / "train" / "7").glob("*.png"))[0].read_bytes())

    rebuilt = build(paths, cache)
    want = decoded(paths)
    assert not np.array_equal(want[5], want[6])
    assert np.array_equal(rebuilt.gather(np.arange(40)).numpy()[..., None], want)
    assert rebuilt.n_decoded_ == 3  # the changed file and the two the index misplaced


def test_an_entry_written_before_entries_were_signed_is_rebuilt_once(tmp_path):
    cache = tmp_path / "cache"
    paths = threes(100)
    pack = build(paths, cache).path_
    record, meta = meta_parts(pack.with_suffix(".json"), "checksum")
    old = {k: v for k, v in record.items() if k != "signature"}
    old["algo"] = "sha256-records-1"
    atomic_write_json(pack.with_suffix(".json"), {**meta, "checksum": old})
    with pytest.warns(CacheRebuildWarning, match=str(pack)) as log:
        again = build(paths, cache)
    assert any("'sha256-records-1'" in str(w.message) for w in log)
    assert again.n_decoded_ == 100
    assert quiet(lambda: build(paths, cache)).n_reused_ == 100


# ---------------------------------------------------------------------------------------------- the key file
@pytest.mark.parametrize("where", ["HOME", "XDG_CONFIG_HOME"])
def test_the_key_is_made_private_in_a_config_folder_that_does_not_exist_yet(tmp_path, monkeypatch, where):
    monkeypatch.delenv("PIPEKIT_CACHE_KEY_FILE")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    config = home / ".config"
    if where == "XDG_CONFIG_HOME":
        config = tmp_path / "xdg"
        monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    assert not config.exists()
    paths, cache = threes(40), tmp_path / "cache"
    quiet(lambda: build(paths, cache))
    key = config / "pipekit" / "cache.key"
    assert key.is_file() and len(key.read_bytes()) == 32
    if os.name != "nt":
        assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert [p.name for p in key.parent.iterdir()] == ["cache.key"]
    new_process(monkeypatch)
    assert quiet(lambda: build(paths, cache)).n_reused_ == 40  # the next run trusts what this one wrote


def test_builds_making_the_key_at_once_agree_on_one(tmp_path):
    """Distributed ranks start together on a fresh machine: each makes a key, one is kept, all read it."""
    path = tmp_path / "fresh" / "cache.key"
    start = threading.Barrier(8)
    keys: list[bytes] = []

    def make() -> None:
        start.wait()
        keys.append(cache_mod._load_key(path))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        workers = [threading.Thread(target=make) for _ in range(8)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    assert len(keys) == 8 and set(keys) == {path.read_bytes()}
    assert [p.name for p in path.parent.iterdir()] == ["cache.key"]


@pytest.mark.parametrize("damage, said", [("readable by others", "can be read or written by other users"),
                                          ("16 bytes", "holds 16 bytes"), ("a link", "is a symbolic link"),
                                          ("a folder", "is not a regular file"),
                                          ("another user's", "belongs to another user")])
def test_a_key_file_that_cannot_be_trusted_is_not_used(tmp_path, monkeypatch, user_key, damage, said):
    if damage == "another user's" and (os.name == "nt" or os.geteuid() != 0):
        pytest.skip("giving a file to another user needs root")
    user_key.parent.mkdir(parents=True)
    genuine = tmp_path / "genuine.key"
    genuine.write_bytes(os.urandom(32))
    genuine.chmod(0o600)
    if damage == "a link":
        user_key.symlink_to(genuine)
    elif damage == "a folder":
        user_key.mkdir()
    else:
        user_key.write_bytes(os.urandom(16 if damage == "16 bytes" else 32))
        user_key.chmod(0o644 if damage == "readable by others" else 0o600)
        if damage == "another user's":
            os.chown(user_key, 12345, 12345)
    before = user_key.read_bytes() if user_key.is_file() else None
    paths, cache = threes(40), tmp_path / "cache"

    with pytest.warns(CacheWriteWarning, match=said) as log:
        build(paths, cache)
    said_of_key = [str(w.message) for w in log if issubclass(w.category, CacheWriteWarning)]
    assert len(said_of_key) == 1 and str(user_key) in said_of_key[0] and "remove it" in said_of_key[0]
    assert quiet(lambda: build(paths, cache)).n_reused_ == 40  # said once; this process's key serves this run
    new_process(monkeypatch)
    with pytest.warns(CacheWriteWarning, match=said), pytest.warns(CacheRebuildWarning, match=NOT_OURS):
        assert build(paths, cache).n_decoded_ == 40  # the next run's key is another one
    assert (user_key.read_bytes() if user_key.is_file() else None) == before  # left as it was


def test_a_key_folder_that_cannot_be_written_gives_a_key_for_this_process(tmp_path, monkeypatch):
    blocker = tmp_path / "config-is-a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PIPEKIT_CACHE_KEY_FILE", str(blocker / "cache.key"))
    paths, cache = threes(40), tmp_path / "cache"
    with pytest.warns(CacheWriteWarning, match="cannot be made") as log:
        build(paths, cache)
    said = [str(w.message) for w in log if issubclass(w.category, CacheWriteWarning)]
    assert len(said) == 1 and str(blocker / "cache.key") in said[0] and "PIPEKIT_CACHE_KEY_FILE" in said[0]
    assert quiet(lambda: build(paths, cache)).n_reused_ == 40
    new_process(monkeypatch)
    with pytest.warns(CacheWriteWarning, match="cannot be made"), pytest.warns(CacheRebuildWarning, match=NOT_OURS):
        assert build(paths, cache).n_decoded_ == 40


# ---------------------------------------------------------------------------------------------- crafted files
@pytest.mark.parametrize("offset", ["last", "middle"])
def test_token_ids_whose_second_chunk_points_past_its_values_are_rebuilt(imdb, tmp_path, offset):
    """Two record batches, the second's list offsets past its values; checksummed and signed as pipekit does, so
    only reading the Arrow file can object."""
    cache = tmp_path / "cache"
    texts = imdb["text"].head(50)
    tokens_of(texts, cache)
    path = entry_ids(cache)
    _, meta = meta_parts(path.with_name("meta.json"), "ids_checksum")
    good = pa.ipc.open_file(pa.BufferReader(path.read_bytes())).read_all().column("ids").combine_chunks()
    half, m = len(good) // 2, len(good) - len(good) // 2
    second = pa.ListArray.from_arrays(pa.array(np.arange(m + 1, dtype=np.int32)),
                                      pa.array(np.arange(m, dtype=np.int32) % 5))
    table = pa.Table.from_batches([pa.record_batch([good.slice(0, half)], names=["ids"]),
                                   pa.record_batch([second], names=["ids"])])
    out = pa.BufferOutputStream()
    with pa.ipc.new_file(out, table.schema) as w:
        w.write_table(table)
    data = bytearray(out.getvalue().to_pybytes())
    at = data.find(np.arange(m + 1, dtype=np.int32).tobytes())
    slot = m if offset == "last" else m // 2
    data[at + 4 * slot:at + 4 * slot + 4] = np.int32(2**30).tobytes()
    path.write_bytes(bytes(data))
    atomic_write_json(path.with_name("meta.json"), {**meta, "ids_checksum": stream_record(bytes(data), path, meta)})

    with pytest.warns(CacheRebuildWarning, match=str(path)) as log:
        block, store = tokens_of(texts, cache)
    assert any("cannot be read as Arrow IPC" in str(w.message) for w in log)
    assert block.from_cache_ is False
    assert store.ids.equals(tokens_of(texts, False)[1].ids)


def test_a_meta_file_nested_thousands_deep_is_rebuilt_not_a_crash(tmp_path):
    cache = tmp_path / "cache"
    paths = threes(40)
    meta_path = build(paths, cache).path_.with_suffix(".json")
    meta_path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CacheEntryError, match="nests its JSON too deeply"):
        read_json(meta_path)
    with pytest.warns(CacheRebuildWarning, match=str(meta_path.with_suffix(".npy"))):
        again = build(paths, cache)
    assert np.array_equal(again.gather(np.arange(40)).numpy()[..., None], decoded(paths))
