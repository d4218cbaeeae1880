"""Presized images in an on-disk, memory-mapped uint8 cache, and the Store batches are gathered from.

Each file is decoded and presized once. The result is written to a ``.npy`` pack of shape
(N, H, W, C) that later epochs and later runs memory-map: a batch is one ``np.take`` (no decoding,
no Python per image). Entries are keyed by a hash of the file's bytes plus the presize settings, so
a changed file is decoded again while unchanged files are copied from the previous pack, which is then deleted
once no file holds the images only it keeps (see :func:`_index_pack`: a data set edited or cleaned, rebuild after
rebuild, keeps one pack on disk, not one per rebuild). A pack takes N x H x W x C bytes (the raw pixels), and is
written only when the disk has room for it; else the images are kept in memory with a CacheWriteWarning saying how
to make room. A file that cannot be decoded does not stop the build: every file is tried and one error names them
all.

A later build reads a file's bytes again only when it may have changed: the pack's meta records, beside each
image's content key, the file's version as the build that read it found it (:func:`~pipekit.data.items.file_version`:
size, modification and change times, inode and device; the change time is the kernel's, so a file copied over
with its old size and times kept, or given its old times back, has another version). The meta is signed with the
pack, so a file whose version is the one recorded takes the recorded key without being read; any other file (one
changed, replaced, new, or an image in memory) is read and hashed. A version is recorded only for a file that had
not changed for :data:`SETTLED_S` seconds when it was read (by its change time: a modification time in the future,
kept from an archive, does not hold it back), so that a write within one tick of the file
system's clock after the read, which can leave every time as it was, cannot go unnoticed.

The cache lives in ``$PIPEKIT_CACHE`` (default ``~/.cache/pipekit``); ``cache_dir=False`` keeps the
pixels in memory instead, and so does a folder that cannot be written (with a CacheWriteWarning saying how
to fix it). Several processes may build in one folder at once (a sweep, two experiments): each commits its
pack and updates the shared index under a file lock, so none deletes a pack another one still lists.

Example:
    >>> store = build_image_store(files, Resize(64), mode="RGB")     # doctest: +SKIP
    >>> store.gather(np.array([0, 5])).shape                          # doctest: +SKIP
    torch.Size([2, 64, 64, 3])
"""
from __future__ import annotations

import contextlib
import copy
import io
import mmap
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol, TypeVar

import numpy as np
import torch

from pipekit.core.errors import DataError, ParameterError, warn
from pipekit.data.cache import (PACK_ID, superseded, keyed_by_settings, CacheEntryError, CacheWriteWarning, PackChecksum, TempFile, atomic_write_json,
                                _signed_again, cache_folder, clean_stale_temps, fingerprint, lock_file, open_verified,
                                read_json, remove_cache_folder, remove_link, warn_rebuild, warn_unwritable)
from pipekit.data.datablock import walking_one_batch
from pipekit.data.external import pipekit_cache_dir
from pipekit.data.items import file_version
from pipekit.data.probe import stage
from pipekit.data.progress import progress_bar
from pipekit.data.store import Store, gather_context, item_draws
from pipekit.vision.buffers import pooled_empty
from pipekit.vision.decode import ImageDecodeError, _header_size, decode_bytes, read_image_file
from pipekit.vision.presize import ItemTransform, RandomResizedCrop
from pipekit.vision.sources import MemoryImage

CACHE_VERSION = "pk-img-4"
T = TypeVar("T")
#: what keeps decoded images off disk, named when the cache folder cannot be written
TURN_OFF = "ImageBlock(cache_dir=False) (or cache_dir=False to build_image_store)"


def default_cache_dir() -> Path:
    """$PIPEKIT_CACHE or ~/.cache/pipekit.

    >>> import os
    >>> from pathlib import Path
    >>> from pipekit.vision import default_cache_dir
    >>> default_cache_dir() == Path(os.path.expanduser(os.environ.get("PIPEKIT_CACHE") or "~/.cache/pipekit"))
    True
    >>> default_cache_dir().is_absolute()
    True
    """
    return pipekit_cache_dir()


def clear_image_cache(cache_dir: str | os.PathLike | None = None) -> int:
    """Delete every cached presized image under ``cache_dir`` (default: the standard cache, ``$PIPEKIT_CACHE``);
    returns the bytes freed. Only what pipekit wrote there is deleted (see
    :func:`~pipekit.data.cache.remove_cache_folder`).

    >>> import tempfile
    >>> import pipekit.datasets as D
    >>> from pipekit.data import get_image_files
    >>> from pipekit.vision import Resize
    >>> from pipekit.vision import build_image_store, clear_image_cache
    >>> cache = tempfile.mkdtemp()
    >>> files = sorted(get_image_files(D.path("mnist_tiny") / "train"))[:4]
    >>> store = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    >>> clear_image_cache(cache) > 0, clear_image_cache(cache)  # the bytes freed; then nothing is left
    (True, 0)
    """
    return remove_cache_folder(cache_folder(cache_dir, "images"))


def _read_bytes(path: str | MemoryImage) -> bytes:
    if isinstance(path, MemoryImage):
        return path.content()
    with stage("read file"):
        return read_image_file(path)


#: how much of a file :func:`_header_size_of` reads first: what :func:`~pipekit.vision.decode._header_size` looks at
HEAD_BYTES = 65536


def _header_size_of(path: str | MemoryImage) -> tuple[int, int] | None:
    """(width, height) declared by the header of the image at ``path``, reading only the file's first
    :data:`HEAD_BYTES` where its header lies there, the whole file where it does not (a JPEG whose frame marker
    comes later, a TIFF whose directory is at its end); None when no header pipekit reads is found."""
    if isinstance(path, MemoryImage):
        return _header_size(path.content())
    try:
        with stage("read file"), open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        head = read_image_file(path)  # the error naming the file and why it cannot be read
    wh = _header_size(head)
    if wh is None and len(head) == HEAD_BYTES:
        wh = _header_size(_read_bytes(path))
    return wh


#: how long before a file is read it must have last changed for the version it is read at to be recorded (see the
#: module docstring): longer than a tick of any file system's clock, and than a small skew between its clock and ours
SETTLED_S = 5


def _version(path: str | MemoryImage) -> str | None:
    """The version of the file at ``path`` now, :func:`~pipekit.data.items.file_version`'s fields (size,
    modification and change times in ns, inode, device) in one string, ``"size:mtime:ctime:inode:device"`` (one
    object per file, as the pack's meta stores it); None for an image in memory or a file that cannot be read."""
    if isinstance(path, MemoryImage):
        return None
    try:
        return ":".join(map(str, file_version(Path(path))))
    except OSError:
        return None


def _settled(version: str, before_ns: int) -> bool:
    """Whether the file of ``version`` (:func:`_version`) last changed :data:`SETTLED_S` seconds or more before
    ``before_ns``, by its change time alone: only the kernel sets it, and every write (and every change of the
    modification time) sets it to now. The modification time is anyone's to set: a file unpacked from an archive made
    on a machine whose clock ran ahead keeps one in the future, and would never count as settled. On Windows the
    change time Python reports is the file's creation time, which a write leaves as it is: there the later of the two
    times counts (a future modification time then holds the file back, and it is read again at each build)."""
    _, mtime, ctime = version.split(":")[:3]
    changed = max(int(mtime), int(ctime)) if os.name == "nt" else int(ctime)
    return changed < before_ns - SETTLED_S * 10**9


def _keyed_bytes(path: str | MemoryImage) -> tuple[str, bytes, str | None]:
    """The content key and the bytes of ``path``, and the version to record for them (None when the file changed
    less than :data:`SETTLED_S` seconds before, or is an image in memory). The version is taken before the bytes
    are read: a write after it gives the file a change time of now, which is not the one recorded."""
    now = time.time_ns()
    version = _version(path)
    data = _read_bytes(path)
    if version is not None and not _settled(version, now):
        version = None
    with stage("hash file"):
        return fingerprint(data), data, version


def _pack_id(keys: list[str], config: str) -> str:
    return fingerprint("\n".join(keys), config, digest_size=12)


#: the most bytes of files a warm build keeps in memory between hashing them and decoding them (see _build_cached):
#: the few files no entry holds that were hashed before the build knew it writes a pack, at most one per thread
HELD_BYTES = 64 << 20

#: the items one thread task decodes (see :func:`_map_in_chunks`)
_CHUNK = 32


def _map_in_chunks(ex: ThreadPoolExecutor, fn: Callable[[int], T], n: int, chunk: int = _CHUNK) -> Iterator[T]:
    """``fn(0..n-1)`` in order, submitted ``chunk`` items per task: one future per file costs the calling
    thread ~60 us of GIL-holding bookkeeping, which competes with the workers (ThreadPoolExecutor.map
    ignores its chunksize)."""
    def run(lo: int) -> list[T]:
        return [fn(i) for i in range(lo, min(lo + chunk, n))]

    for part in ex.map(run, range(0, n, chunk)):
        yield from part


_META_FIELDS: dict[str, type | tuple[type, ...]] = {"orig_sizes": list, "config": str, "shape": list,
                                                    "keys": list, "checksum": dict}


class _Pack(NamedTuple):
    """A pack opened and verified by :func:`_open_pack`."""

    pixels: np.ndarray
    sizes: np.ndarray
    keys: list[str]
    value_max: np.ndarray | None
    #: the version each slot's file was read at (:func:`_version`), None where not recorded
    stamps: list[str | None]
    #: the slot of each source file (:func:`_source_names`) recorded with its version
    slots: dict[str, int]
    #: the meta as verified, without its checksum record, and that record: what the meta is signed again from when
    #: it records other source files or versions (see :func:`_record_sources`)
    meta: dict
    checksum: dict


def _read_meta(pack: Path) -> dict:
    """The meta of ``pack`` as it stands, its fields checked but not its signature (that is :func:`_open_pack`'s).
    Raises CacheEntryError."""
    meta = read_json(pack.with_suffix(".json"), _META_FIELDS)
    if not isinstance(meta, dict):
        raise CacheEntryError(f"{pack.with_suffix('.json').name} is not a map of fields")
    return meta


def _recorded(meta: dict, n: int) -> tuple[list[str | None], list[str | None]] | None:
    """The ``sources`` and ``stamps`` fields of a pack's meta (``n`` images): each slot's source file
    (:func:`_source_names`) and its version when it was read (None where not recorded). None when either is missing
    or not of that form (a pack an older pipekit wrote records no versions: its files are read again)."""
    sources, stamps = meta.get("sources"), meta.get("stamps")
    if not isinstance(sources, list) or len(sources) != n or not all(s is None or isinstance(s, str) for s in sources):
        return None
    if not isinstance(stamps, list) or len(stamps) != n or not all(v is None or isinstance(v, str) for v in stamps):
        return None
    return sources, stamps


def _npy_header_len(shape: Sequence[int]) -> int:
    """The size of the .npy header NumPy writes before a uint8 pack of ``shape`` (what ``open_memmap`` writes)."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                               "fortran_order": False, "shape": tuple(shape)})
    return len(out.getvalue())


def _map_pack(f: IO[bytes], header_len: int, shape: Sequence[int]) -> np.ndarray:
    """The uint8 pixels of ``shape`` after the ``header_len`` bytes of the pack open in ``f``, mapped read-only
    (the mapping stays readable after ``f`` is closed, and after the pack is unlinked). An ndarray over an
    :class:`mmap.mmap`, not an ``np.memmap``: a memmap of a file opened by descriptor has no file name, and joblib's
    workers reopen a memmap by its name (a learner passed to ``joblib.Parallel`` could not be unpickled there). A
    store pickled, deep-copied or sent to a worker process holds the pixels (joblib's workers get large ones
    through its own temporary memmap)."""
    mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.ndarray(tuple(shape), dtype=np.uint8, buffer=mapped, offset=header_len)


def _open_pack(pack: Path, config: str, channels: int, n: int | None, meta: dict | None = None) -> _Pack:
    """The pack memory-mapped, its source sizes, the content keys of its images, the largest value of each
    decoded source before its item transform (``value_max``, written for masks; None when the meta has none, as in
    a pack an older pipekit wrote) and the versions its files were read at, after checking its meta, its signature
    and every byte against the checksum written with it (once per open, never per batch). Raises CacheEntryError
    saying what is wrong, FileNotFoundError when the pack does not exist. ``meta``: the pack's meta, when it was
    already read (:func:`_read_meta`); what it says is trusted only once its signature is checked, as here.

    The keys and the versions are signed with the pack: the index only says where to look, a slot is used for a
    file only when the pack lists that file's key there, and a file takes a recorded key without being read only
    when the pack records that very file at the version it has now.

    Verifying costs one read and hash of the pack (SHA-256, ~1.1 GB/s per core here; blake2b took 0.15-0.2 s
    of a 0.36-0.5 s warm open of the dogscats recipe's cache, 4,000 images at Resize(80), 77 MB).
    """
    if not pack.exists():
        raise FileNotFoundError(pack)
    meta = _read_meta(pack) if meta is None else dict(meta)
    if meta["config"] != config:
        raise CacheEntryError(f"{pack.with_suffix('.json').name} describes other settings ({meta['config']!r})")
    shape = meta["shape"]
    if len(shape) != 4 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise CacheEntryError(f"{pack.with_suffix('.json').name}: field 'shape' is {shape!r}, not 4 sizes")
    if shape[3] != channels or (n is not None and shape[0] != n):
        raise CacheEntryError(f"{pack.with_suffix('.json').name}: shape {shape} does not fit {n} images "
                              f"of {channels} channel(s)")
    try:
        sizes = np.asarray(meta["orig_sizes"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        sizes = np.zeros(0, dtype=np.int64)
    if sizes.shape != (shape[0], 2):
        raise CacheEntryError(f"{pack.with_suffix('.json').name}: field 'orig_sizes' is not {shape[0]} "
                              "(height, width) pairs")
    keys = meta["keys"]
    if len(keys) != shape[0] or not all(isinstance(k, str) for k in keys):
        raise CacheEntryError(f"{pack.with_suffix('.json').name}: field 'keys' is not {shape[0]} content keys")
    top = meta.get("value_max")
    if top is not None and (not isinstance(top, list) or len(top) != shape[0] or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in top)):
        raise CacheEntryError(f"{pack.with_suffix('.json').name}: field 'value_max' is not {shape[0]} pixel values")
    recorded = _recorded(meta, shape[0])
    # The layout comes from the shape, never from the checksum record: each image is one record.
    checksum = meta.pop("checksum")
    header_len = _npy_header_len(shape)
    # opened once: the file mapped is the file verified, whatever is renamed into the pack's place meanwhile
    with open_verified(pack, checksum, header_len=header_len, record_len=shape[1] * shape[2] * shape[3],
                       meta=meta) as f:
        try:
            if np.lib.format.read_magic(f) != (1, 0):
                raise ValueError("not a version 1.0 .npy header")
            stored, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            if dtype != np.uint8 or list(stored) != shape or fortran or f.tell() != header_len:
                raise CacheEntryError(f"holds {dtype} {stored}, its meta says uint8 {tuple(shape)}")
            pixels = _map_pack(f, header_len, shape)
        except (ValueError, TypeError, OSError) as e:
            raise CacheEntryError(f"not a NumPy pack ({e})") from None
    sources, stamps = recorded if recorded is not None else ([], [None] * shape[0])
    slots = {src: slot for slot, (src, stamp) in enumerate(zip(sources, stamps)) if src is not None and stamp is not None}
    return _Pack(pixels, sizes, keys, None if top is None else np.asarray(top, dtype=np.int64), stamps, slots, meta,
                 checksum)


def _read_index(path: Path, report: bool = True) -> dict[str, list]:
    """content key -> [pack id, slot]; a missing index is empty, a damaged one is dropped (and reported with a
    CacheRebuildWarning when ``report``). The index is not signed: a pack id not of the form pipekit names packs
    (:data:`~pipekit.data.cache.PACK_ID`, e.g. a path leading out of the cache folder) makes it damaged, before any
    file it names is opened."""
    if not path.exists():
        return {}
    try:
        index = read_json(path)
        if not isinstance(index, dict) or not all(
                isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)
                and not isinstance(v[1], bool) and v[1] >= 0 for v in index.values()):
            raise CacheEntryError(f"{path.name} is not a map of content keys to [pack, slot]")
        bad = next((v[0] for v in index.values() if not PACK_ID.fullmatch(v[0])), None)
        if bad is not None:
            raise CacheEntryError(f"{path.name} lists the pack {bad!r}, which is not a pack name pipekit writes "
                                  f"({PACK_ID.pattern})")
    except CacheEntryError as e:
        if report:
            warn_rebuild(path, e.reason)
        return {}
    return index


class _CacheUnwritable(Exception):
    """The cache folder cannot be created or written (read-only, a file in the way, disk full)."""

    def __init__(self, folder: Path, error: OSError):
        super().__init__(f"{folder}: {error}")
        self.folder, self.error = folder, error


@contextlib.contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """Turn an OSError of a write into the cache ``folder`` into _CacheUnwritable. FileNotFoundError passes: it
    means another process removed a file this build needed, not that the folder cannot be written."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as e:
        raise _CacheUnwritable(folder, e) from e


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) against other processes: one build at a time
    commits its pack, rewrites the index and deletes unlisted packs (:func:`~pipekit.data.cache.lock_file`; a
    clearing holds it too while it empties the entry). Where the platform or file system has no ``flock`` (Windows,
    some network file systems), no lock is held. A link in the lock's place is removed, not followed (it would make
    the build create the file it points to, anywhere)."""
    remove_link(path)
    with lock_file(path):
        yield


def _source_names(paths: Sequence[str | MemoryImage]) -> list[str | None]:
    """What a pack's meta records of where each image came from (``sources``): the file's path with its folder's
    links resolved (``os.path.realpath`` of the folder, once per folder), so that a data set reached through a link
    and through its real path is one set of files, and its meta is not rewritten at each build that reaches it the
    other way; None for an image in memory. A file that is itself a link is recorded by its own name: resolving each
    file took 35-50 us a file here (140-190 ms for dogscats' 4,000 files), once per folder 7-15 ms in all."""
    folders: dict[str, str] = {}
    out: list[str | None] = []
    for p in paths:
        if isinstance(p, MemoryImage):
            out.append(None)
            continue
        folder, name = os.path.split(os.path.abspath(p))
        real = folders.get(folder)
        if real is None:
            real = folders[folder] = os.path.realpath(folder)
        out.append(os.path.join(real, name))
    return out


def _pack_sources(cdir: Path, pack_id: str) -> tuple[list[str], list[str | None]] | None:
    """The content keys and the source files (:func:`_source_names`) of the pack ``pack_id``, from its meta; None when
    the meta cannot be read or records no sources (a pack an older pipekit wrote). Read to tell which of its images
    are old contents of files, never to serve pixels (that is :func:`_open_pack`'s, which checks the signature)."""
    try:
        meta = read_json(cdir / f"{pack_id}.json", {"keys": list})
    except CacheEntryError:
        return None
    keys, sources = meta["keys"], meta.get("sources")
    if not isinstance(sources, list) or len(sources) != len(keys) or not all(
            s is None or isinstance(s, str) for s in sources):
        return None
    return keys, sources


def _outdated(cdir: Path, index: dict[str, list], pack_id: str, keys: list[str],
              sources: Sequence[str | None]) -> set[str]:
    """The entries of ``index`` (in packs other than ``pack_id``) holding an old content of a file of the build that
    wrote ``keys`` from ``sources``: a file it read with other content, or one gone from a folder it read. No file
    holds those images any more; an entry of a file this build did not read, in a folder it did not read or still
    there, may be another data set's (a subset, a sample) and is kept."""
    now = {src: k for src, k in zip(sources, keys) if src is not None}
    if not now:
        return set()
    folders: dict[str, set[str] | None] = {os.path.dirname(src): None for src in now}  # read: its files, listed once

    def gone(src: str) -> bool:
        folder, name = os.path.split(src)
        if folder not in folders:
            return False
        names = folders[folder]
        if names is None:
            try:
                names = folders[folder] = set(os.listdir(folder))
            except OSError:  # unreadable or gone meanwhile: none of its files is taken for deleted
                del folders[folder]
                return False
        return name not in names

    by_pack: dict[str, list[str]] = {}
    for k, ref in index.items():
        if ref[0] != pack_id:
            by_pack.setdefault(ref[0], []).append(k)
    out: set[str] = set()
    for pid, entries in by_pack.items():
        recorded = _pack_sources(cdir, pid)
        if recorded is None:
            continue
        pack_keys, pack_sources = recorded
        for k in entries:
            slot = index[k][1]
            src = pack_sources[slot] if slot < len(pack_sources) and pack_keys[slot] == k else None
            if src is None:
                continue
            if src in now:
                if now[src] != k:  # the file now holds other content
                    out.add(k)
            elif gone(src):  # deleted from a folder this build read
                out.add(k)
    return out


def _taken(cdir: Path, pack_id: str, listed: int, left: int) -> tuple[int, int]:
    """``(taken, held)``: how many of the distinct images of pack ``pack_id`` are no longer listed as its (held by
    newer packs, or old contents of files dropped), of the ``held`` it holds, when ``listed`` entries of the index
    listed it before this build and ``left`` still do (what :func:`~pipekit.data.cache.superseded` weighs). Counted
    from its meta's keys; when they cannot be read, from the entries that listed it (what this build alone took)."""
    try:
        held = len(set(read_json(cdir / f"{pack_id}.json", {"keys": list})["keys"]))
    except CacheEntryError:
        held = 0
    held = max(held, listed)
    return held - left, held


def _index_pack(cdir: Path, keys: list[str], pack_id: str, sources: Sequence[str | None] = ()) -> None:
    """List ``keys`` (read from the files ``sources``, see :func:`_source_names`) as the slots of pack ``pack_id`` in
    ``cdir``'s index, then delete the packs no entry lists.

    The index is keyed by file content and shared by every data set built with these settings, so a key this build
    does not use may be another data set's. Two rules drop the entries of older packs, and a pack none of whose entries
    is left is deleted:

    - an entry holding an old content of a file of this build (:func:`_outdated`: the file now holds other content,
      or it is gone from a folder this build read) is dropped: no file holds that image any more. Editing any share of
      a data set's files therefore leaves one pack of it, not one more copy per edit.
    - a pack is superseded when newer packs hold at least three quarters of its images (:data:`SUPERSEDED_SHARE`
      of its distinct content keys no longer listed as its): the same data set with files deleted, replaced or
      added, a subset of it that large, or several samples of it taken in turn (a random half of a folder at each
      run), which would otherwise leave a pack per sample. Its remaining entries are dropped with it. A build of
      another data set sharing fewer of its files (a sample of it, or one overlapping it) takes a smaller share, and
      both packs stay.

    Runs under the folder's lock (:func:`_locked`), with the index read again there: the entries other
    processes wrote since this build read the index stay listed unless a rule above drops them, so their packs are
    kept. Every pack is committed under the same lock, so an unlisted pack is garbage, never one about to be indexed.
    Only files named as packs (:data:`~pipekit.data.cache.PACK_ID`) are ever deleted.

    Only the packs this build takes entries from (or drops entries of) are weighed, reading their meta: the entries of
    any other pack are as the commit that last changed them left them, and that commit weighed it.
    """
    index = _read_index(cdir / "index.json", report=False)
    listed = Counter(ref[0] for ref in index.values())
    for slot, k in enumerate(keys):
        index[k] = [pack_id, slot]
    outdated = _outdated(cdir, index, pack_id, keys, sources)
    left = Counter(ref[0] for k, ref in index.items() if k not in outdated)
    gone = {pid for pid, n in listed.items()
            if pid != pack_id and left[pid] < n and superseded(*_taken(cdir, pid, n, left[pid]))}
    on_disk = {f.stem for f in cdir.glob("*.npy") if PACK_ID.fullmatch(f.stem)}
    # entries of packs deleted by hand, of superseded packs, and the old contents of this build's files
    index = {k: ref for k, ref in index.items()
             if ref[0] in on_disk and ref[0] not in gone and k not in outdated}
    atomic_write_json(cdir / "index.json", index)
    # Packs no longer referenced by any key are garbage (a mapped file stays readable after unlink).
    for stem in on_disk - {ref[0] for ref in index.values()}:
        (cdir / f"{stem}.npy").unlink(missing_ok=True)
        (cdir / f"{stem}.json").unlink(missing_ok=True)


class ImageStore(Store):
    """Presized uint8 images (N, H, W, C), in memory or memory-mapped; ``gather`` gives an NHWC uint8 batch.

    Masks are stored with ``squeeze=True`` and gathered as (B, H, W).
    Attributes: ``orig_sizes`` (N, 2) source (height, width); ``value_max`` (N,) the largest value of each
    decoded source before the item transform (recorded for masks, whose values a resize or crop may drop; None when
    not recorded); ``n_decoded_`` and ``n_reused_`` from the build (how many files were decoded vs. found in the
    cache); ``path_`` the pack file or None.

    >>> import numpy as np
    >>> from pipekit.vision import ImageStore
    >>> store = ImageStore(np.zeros((3, 4, 6, 3), np.uint8), orig_sizes=[[8, 12]] * 3)  # 3 RGB images
    >>> store, len(store), store.source_size(1)
    (ImageStore(n=3, size=(4, 6), channels=3), 3, (8, 12))
    >>> tuple(store.gather(np.array([2, 0])).shape)  # a batch of images 2 and 0
    (2, 4, 6, 3)
    """

    def __init__(self, pixels: np.ndarray, orig_sizes: np.ndarray, squeeze: bool = False,
                 n_decoded: int = 0, n_reused: int = 0, path: Path | None = None,
                 value_max: np.ndarray | None = None):
        if pixels.ndim != 4 or pixels.dtype != np.uint8:
            raise ValueError(f"ImageStore needs a uint8 (N, H, W, C) array, got {pixels.dtype} {pixels.shape}")
        self.pixels = pixels
        self.orig_sizes = np.asarray(orig_sizes, dtype=np.int64).reshape(-1, 2)
        self.value_max = None if value_max is None else np.asarray(value_max, dtype=np.int64).reshape(-1)
        if self.value_max is not None and len(self.value_max) != pixels.shape[0]:
            raise ValueError(f"ImageStore got {len(self.value_max)} value_max for {pixels.shape[0]} images")
        self.squeeze, self.n_decoded_, self.n_reused_, self.path_ = squeeze, n_decoded, n_reused, path

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[2])

    def gather(self, idx: np.ndarray) -> torch.Tensor:
        idx = np.asarray(idx, dtype=np.int64)
        out = pooled_empty((len(idx),) + self.pixels.shape[1:], np.uint8)
        np.take(self.pixels, idx, axis=0, out=out)  # releases the GIL; reads straight from the mapped pages
        t = torch.from_numpy(out)
        return t[..., 0] if self.squeeze else t

    def subset(self, idx: np.ndarray) -> ImageStore:
        idx = np.asarray(idx, dtype=np.int64)
        return ImageStore(self.pixels[idx], self.orig_sizes[idx], self.squeeze,
                          value_max=None if self.value_max is None else self.value_max[idx])

    def source_size(self, i: int) -> tuple[int, int]:
        h, w = self.orig_sizes[int(i)]
        return int(h), int(w)

    def __repr__(self) -> str:
        where = f", cache={self.path_}" if self.path_ else ""
        return f"ImageStore(n={len(self)}, size={self.size}, channels={self.pixels.shape[3]}{where})"


def _decode_source(path: str | MemoryImage, mode: str, data: bytes | None = None) -> np.ndarray:
    """The decoded uint8 (H, W, C) pixels of a file (``data``: its bytes, when already read) or an image in memory."""
    if isinstance(path, MemoryImage):
        with stage("decode"):
            return path.decode(mode)
    if data is None:
        data = _read_bytes(path)
    with stage("decode"):
        return decode_bytes(data, mode=mode, name=str(Path(path)))


def _decode_one(path: str | MemoryImage, mode: str, tfm: ItemTransform | None,
                data: bytes | None = None) -> tuple[np.ndarray, tuple[int, int], int]:
    """The decoded image through ``tfm``, its source (height, width) and, for a mask, its largest value as decoded
    (0 for other images): a resize or crop may drop a value, which a mask block checks against its codes."""
    img = _decode_source(path, mode, data)
    hw = (img.shape[0], img.shape[1])
    top = int(img.max()) if mode == "mask" and img.size else 0
    if tfm is not None:
        with stage(f"item transform {type(tfm).__name__}"):
            img = tfm.apply(img, nearest=(mode == "mask"))
    return img, hw, top


def _check_size(img: np.ndarray | tuple[int, int], hw: tuple[int, int], paths: Sequence[str | MemoryImage],
                i: int) -> None:
    """Every image of a pack has the first one's size (an item transform makes them so); ``img``: the image, or
    its (height, width)."""
    got = tuple(img.shape[:2]) if isinstance(img, np.ndarray) else tuple(img)
    if got != tuple(hw):
        raise ValueError(f"{paths[i]}: image is {got[1]}x{got[0]} but {paths[0]} is {hw[1]}x{hw[0]}; "
                         "images of different sizes need an item transform such as Resize(224)")


def build_image_store(items: Sequence[str | os.PathLike | MemoryImage], tfm: ItemTransform | None = None,
                      mode: str = "RGB",
                      cache_dir: str | os.PathLike | bool | None = None, num_workers: int | None = None,
                      description: str = "presizing images") -> ImageStore:
    """Decode and presize ``items`` once (threads), reusing the on-disk cache when it is valid.

    ``items`` are files or images in memory (:class:`~pipekit.vision.sources.MemoryImage`: encoded bytes
    or a PIL image); both are keyed in the cache by their content.

    ``tfm`` is the item transform (``Resize``, ``CropPad``, ``RandomResizedCrop``) or None when all
    images already share one size. ``cache_dir``: None for the default cache, a folder, or False for
    memory only; a ``tfm`` of a class of the user's (a subclass of ``Resize``) is always presized in memory, as the
    cache cannot key its code. A pack whose bytes or meta fail their checks is rebuilt with a CacheRebuildWarning.

    >>> import tempfile
    >>> import numpy as np
    >>> import pipekit.datasets as D
    >>> from pipekit.data import get_image_files
    >>> from pipekit.vision import Resize
    >>> from pipekit.vision import build_image_store
    >>> files, cache = sorted(get_image_files(D.path("mnist_tiny") / "train"))[:4], tempfile.mkdtemp()
    >>> store = build_image_store(files, Resize(16), mode="L", cache_dir=cache)
    >>> tuple(store.gather(np.array([0, 3])).shape), store.orig_sizes[0].tolist(), store.n_decoded_
    ((2, 16, 16, 1), [28, 28], 4)
    >>> build_image_store(files, Resize(16), mode="L", cache_dir=cache).n_reused_  # a later run: all reused
    4
    """
    paths: list[str | MemoryImage] = [p if isinstance(p, MemoryImage) else os.fspath(p) for p in items]  # type: ignore[misc]
    if not paths:
        raise ValueError("no image files to load: the item list is empty; check get_items and the folder")
    if tfm is not None and not isinstance(tfm, ItemTransform):
        raise TypeError(f"tfm must be an image item transform (Resize, CropPad, RandomResizedCrop), got {tfm!r}")
    workers = num_workers or max(1, min(8, os.cpu_count() or 1))
    channels, squeeze = 3 if mode == "RGB" else 1, mode == "mask"
    if walking_one_batch():  # DataBlock.summary: only the images its walk reads are decoded, in memory
        keyed = tfm is None or keyed_by_settings(tfm)
        # it gives what an ImageStore gives, for the rows the walk reads
        return ImagesAsRead(paths, tfm, mode, cache_folder(cache_dir, "images") if keyed else None,  # type: ignore[return-value]
                            num_workers=workers)
    # masks are resized with centre-aligned nearest neighbours; the tag keeps packs of an older resampler apart
    config = f"{CACHE_VERSION}|{mode}{'|nearest-exact' if mode == 'mask' else ''}|" \
             f"{tfm.cache_key() if tfm is not None else 'none'}"

    # a transform of the user's class (a subclass of Resize) is presized in memory: the cache keys settings, and
    # its code can change between two runs under the same name and settings
    root = cache_folder(cache_dir, "images") if tfm is None or keyed_by_settings(tfm) else None
    if root is None:
        return _build_in_memory(paths, tfm, mode, channels, squeeze, workers, description)
    try:
        return _build_cached(paths, tfm, mode, channels, squeeze, workers, description, config, root)
    except _CacheUnwritable as e:  # a read-only $HOME, a PIPEKIT_CACHE on a read-only mount or at a file
        warn_unwritable(e.folder, e.error, "decoded images", TURN_OFF)
        return _build_in_memory(paths, tfm, mode, channels, squeeze, workers, description)


def _recorded_keys(sources: Sequence[str | None], index: dict[str, list], cdir: Path,
                   open_checked: Callable[[str, int | None, dict | None], _Pack | None], keys: list[str],
                   stamps: list[str | None]) -> None:
    """Set ``keys[i]`` and ``stamps[i]`` of each file (``sources``, :func:`_source_names`) that a verified pack
    records at the version the file has now (see the module docstring); the others are left empty, to be read and
    hashed. One ``stat`` per file. A pack is opened (and so verified) only when its meta records one of these files at
    its present version, most listed packs first, until every file is found; its meta is read once, for both."""
    now = [None if src is None else _version(src) for src in sources]
    left = [i for i, v in enumerate(now) if v is not None]
    for pid, _ in Counter(ref[0] for ref in index.values()).most_common():
        if not left:
            break
        try:
            meta = _read_meta(cdir / f"{pid}.npy")
        except CacheEntryError:
            continue  # a damaged meta is named, and its pack rebuilt, where an entry of it is used
        recorded = _recorded(meta, len(meta["keys"]))
        unverified = {} if recorded is None else dict(zip(*recorded))
        if not any(unverified.get(sources[i]) == now[i] for i in left):
            continue
        opened = open_checked(pid, None, meta)
        if opened is None:
            continue
        still = []
        for i in left:
            slot = opened.slots.get(sources[i])  # type: ignore[arg-type]
            if slot is not None and opened.stamps[slot] == now[i]:
                keys[i], stamps[i] = opened.keys[slot], now[i]
            else:
                still.append(i)
        left = still


def _record_sources(pack: Path, hit: _Pack, sources: list[str | None], stamps: list[str | None],
                    root: Path) -> None:
    """Make the meta of ``pack`` (``hit``, opened and verified, holding the images of the files ``sources``, see
    :func:`_source_names`) record these files and the versions this build found them at (``stamps``) when it records
    others: files moved or renamed with their folder, or read when they had just changed, or by an older pipekit,
    which recorded no version. Otherwise every later build would read and hash each file again. The pixels stay; the
    meta is signed again from the record verified with them. Where the folder cannot be written the entry is served
    all the same."""
    if hit.meta.get("sources") == sources and hit.meta.get("stamps") == stamps:
        return
    meta = {**hit.meta, "sources": sources, "stamps": stamps}
    with contextlib.suppress(_CacheUnwritable, OSError), _writing(root), _locked(pack.parent / "index.lock"):
        atomic_write_json(pack.with_suffix(".json"), {**meta, "checksum": _signed_again(hit.checksum, pack, meta)})


def _build_cached(paths: list[str | MemoryImage], tfm: ItemTransform | None, mode: str, channels: int,
                  squeeze: bool, workers: int, description: str, config: str, root: Path) -> ImageStore:
    """:func:`build_image_store` through the cache folder ``root``; raises _CacheUnwritable when a write there
    fails (a complete entry is still served from a read-only folder)."""
    clean_stale_temps(root)
    cdir = root / fingerprint(config, digest_size=8)
    with _writing(root):
        remove_link(cdir)  # a link in the entry's place would make this build write and delete wherever it points
        cdir.mkdir(parents=True, exist_ok=True)
    index = _read_index(cdir / "index.json")
    # A cold cache (nothing indexed, no pack) cannot hold any of these files: each file is then read once,
    # hashed and decoded from the same bytes, instead of a hashing pass followed by a decoding pass.
    cold = not index and not any(cdir.glob("*.npy"))
    keys: list[str] = [""] * len(paths)
    # each file's version as read (see _keyed_bytes), recorded in the pack's meta so that the next build need not read it
    stamps: list[str | None] = [None] * len(paths)
    # the files that cannot be read or decoded, by item: the build goes on past them and names them all at the end
    broken: dict[int, ImageDecodeError] = {}
    sources = _source_names(paths)

    # Set by the first file hashed that no entry holds: this build writes a pack, and every file not keyed yet is
    # keyed as it is decoded, from the one read of its bytes, as in a cold build (see take). So no file's bytes wait
    # in memory for their decoding, and a file rewritten meanwhile cannot have its new pixels stored under its old
    # content's key.
    writing = threading.Event()
    # The bytes of the files no entry holds that were hashed before the build knew it writes a pack (those hashed
    # beside the first one found, at most one per thread), kept to be decoded: up to HELD_BYTES in all. A file past
    # that is read again to be decoded, and keyed by the bytes decoded (see take).
    held: dict[int, bytes] = {}
    room_held = [HELD_BYTES]
    holding = threading.Lock()

    def key_of(i: int) -> str:
        if keys[i]:  # its version is one a verified pack records
            return keys[i]
        if writing.is_set():  # keyed as it is decoded
            return ""
        try:
            key, data, stamps[i] = _keyed_bytes(paths[i])
        except ImageDecodeError as e:
            broken[i] = e
            return ""
        if key not in index:
            writing.set()
            if not isinstance(paths[i], MemoryImage):
                with holding:
                    if len(data) <= room_held[0]:
                        room_held[0] -= len(data)
                        held[i] = data
        return key

    # Packs opened (verified) in this build, None for those that failed: each is checked once, by one thread (a
    # file keyed as it is decoded may need a pack no file keyed before it did).
    old_packs: dict[str, _Pack | None] = {}
    opening = threading.Lock()
    # a mask's largest value as decoded is kept in the pack's meta: the stored (resized) pixels may have lost it.
    # A mask pack without it (written by an older pipekit) serves no entry: its files are decoded again.
    masks = mode == "mask"

    def open_checked(pid: str, n: int | None, meta: dict | None = None) -> _Pack | None:
        if pid in old_packs:  # opened already: no lock taken for each file
            return old_packs[pid]
        with opening:
            if pid not in old_packs:
                pack = cdir / f"{pid}.npy"
                try:
                    old_packs[pid] = _open_pack(pack, config, channels, n, meta)
                except CacheEntryError as e:
                    if pack.exists():  # not one another build's clean-up deleted while it was being opened
                        warn_rebuild(pack, e.reason)
                    old_packs[pid] = None
                except FileNotFoundError:  # collected as garbage, or never written by a killed build
                    old_packs[pid] = None
            return old_packs[pid]

    if not cold:
        _recorded_keys(sources, index, cdir, open_checked, keys, stamps)
        if not all(keys):  # the files no verified pack records at their present version are read and hashed
            with ThreadPoolExecutor(workers, thread_name_prefix="pipekit-build") as ex:
                keys = list(_map_in_chunks(ex, key_of, len(paths)))
    pack_id = _pack_id(keys, config)

    if not cold and not broken and all(keys) and (cdir / f"{pack_id}.npy").exists():
        hit = open_checked(pack_id, len(paths))
        if hit is not None and hit.keys == keys and (hit.value_max is not None or not masks):
            _record_sources(cdir / f"{pack_id}.npy", hit, sources, stamps, root)
            return ImageStore(hit.pixels, hit.sizes, squeeze, n_decoded=0, n_reused=len(paths),
                              path=cdir / f"{pack_id}.npy", value_max=hit.value_max if masks else None)

    def old_entry(key: str) -> tuple[np.ndarray, tuple[int, int], int] | None:
        ref = index.get(key)
        if ref is None:
            return None
        opened = open_checked(ref[0], None)
        # the index is not signed: a slot serves this file only when the pack's signed keys list it there
        if opened is None or ref[1] >= len(opened[0]) or opened[2][ref[1]] != key:
            return None
        arr, sizes, tops = opened.pixels, opened.sizes, opened.value_max
        if masks and tops is None:
            return None
        top = int(tops[ref[1]]) if tops is not None else 0
        return np.asarray(arr[ref[1]]), (int(sizes[ref[1]][0]), int(sizes[ref[1]][1])), top

    def take(i: int) -> tuple[np.ndarray, tuple[int, int], int, bool] | None:
        """Image ``i`` (from an old pack or decoded), its source size, value_max and whether it was decoded; None
        when its file cannot be read or decoded (kept in ``broken``)."""
        if i in broken:
            return None
        data: bytes | None
        try:
            if cold or not keys[i]:  # keyed by the bytes it is decoded from (a warm build's: when no entry holds them)
                keys[i], data, stamps[i] = _keyed_bytes(paths[i])
                entry = None if cold else old_entry(keys[i])
            else:
                data, entry = held.pop(i, None), old_entry(keys[i])
                if entry is None and data is None and not isinstance(paths[i], MemoryImage):
                    # read again to be decoded: keyed by what is decoded, should the file have changed meanwhile
                    data = _read_bytes(paths[i])
                    with stage("hash file"):
                        key = fingerprint(data)
                    if key != keys[i]:
                        keys[i], stamps[i] = key, None
            img, hw, top = _decode_one(paths[i], mode, tfm, data) if entry is None else entry
        except ImageDecodeError as e:
            broken[i] = e
            return None
        return img, hw, top, entry is None

    # The output shape: the transform's size, or the first readable image's own size. The first image is kept, not
    # read and decoded a second time.
    got_first: dict[int, tuple[np.ndarray, tuple[int, int], int, bool]] = {}

    def take_first(i: int) -> tuple[np.ndarray, tuple[int, int], int, bool] | None:
        got = take(i)
        if got is not None:
            got_first[i] = got
        return got

    with ThreadPoolExecutor(1, thread_name_prefix="pipekit-build") as ex:  # build work, reported as such by a profile
        h, w = ex.submit(_first_image, take_first, paths, broken).result()[0].shape[:2]

    def take_once(i: int) -> tuple[np.ndarray, tuple[int, int], int, bool] | None:
        return got_first.pop(i) if i in got_first else take(i)

    # Load (and verify) the old packs in this thread so the workers only read them.
    if not cold:
        for k in set(keys):
            old_entry(k)
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    tops = np.zeros(len(paths), dtype=np.int64)
    shape = (len(paths), h, w, channels)
    item_bytes = h * w * channels
    need = _npy_header_len(shape) + len(paths) * item_bytes
    room = _free_space(cdir)
    if room is not None and room < need:  # said before any decoding, rather than by a write failing halfway
        _warn_no_room(cdir, need, room, shape)
        pixels = np.empty(shape, dtype=np.uint8)

        def keep(i: int) -> bool:
            got = take_once(i)
            if got is None:
                return False
            _check_size(got[0], (h, w), paths, i)
            pixels[i] = got[0]
            sizes[i], tops[i] = got[1], got[2]
            return got[3]

        with ThreadPoolExecutor(workers, thread_name_prefix="pipekit-build") as ex:
            kept = list(progress_bar(_map_in_chunks(ex, keep, len(paths)), total=len(paths), description=description))
        if broken:
            raise _broken_error(broken)
        n_decoded = int(sum(kept))
        return ImageStore(pixels, sizes, squeeze, n_decoded=n_decoded, n_reused=len(paths) - n_decoded,
                          value_max=tops if masks else None)
    # The pack's name depends on every key, which a cold build only knows at the end.
    with _writing(root):  # making the temporary file is a write into the folder too (read-only, full, a file there)
        tmp = TempFile(cdir, "pack")
    reader = _read_back(tmp)
    with tmp, reader if reader is not None else contextlib.nullcontext():
        with _writing(root):
            # the .npy header np.save and open_memmap write, then the pack sized for every image; all through the
            # descriptor TempFile created, never by opening its name again
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(head, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                                        "fortran_order": False, "shape": shape})
            header = head.getvalue()
            data_offset = len(header)
            fd = tmp.fd
            if os.pwrite(fd, header, 0) != data_offset:
                raise OSError(f"{tmp.path}: short write of the header; is the disk full?")
            os.ftruncate(fd, data_offset + len(paths) * item_bytes)
            checksum = PackChecksum(header, item_bytes, len(paths))
            # Workers write with pwrite: the kernel copies into the page cache, with none of the page faults
            # that filling a writable mapping costs (2-3x faster here). Each image is hashed from the buffer it
            # was written from, so the checksum costs no second pass over the pack.

        def fill(i: int) -> bool:
            got = take_once(i)
            if got is None:
                return False
            img, hw, top, decoded = got
            _check_size(img, (h, w), paths, i)
            with stage("cache write"), _writing(root):
                buf = np.ascontiguousarray(img).data
                if os.pwrite(fd, buf, data_offset + i * item_bytes) != item_bytes:
                    raise OSError(f"{tmp.path}: short write for {paths[i]}; is the disk full?")
                checksum.add(i, buf)
            sizes[i], tops[i] = hw, top
            return decoded

        with ThreadPoolExecutor(workers, thread_name_prefix="pipekit-build") as ex:  # tmp closes fd
            flags = list(progress_bar(_map_in_chunks(ex, fill, len(paths)), total=len(paths),
                                      description=description))
        if broken:  # nothing is committed: the temporary file is removed
            raise _broken_error(broken)
        # named at the end: a cold build knows its keys only now, and a warm one keys a file read again by what it
        # decoded
        pack_id = _pack_id(keys, config)
        pack = cdir / f"{pack_id}.npy"
        n_decoded = int(sum(flags))
        with _writing(root):  # a clearing (by an older pipekit) may have removed the entry's folder meanwhile
            cdir.mkdir(parents=True, exist_ok=True)
        committed = False
        # Builds in other processes (a sweep, two experiments) share the folder: commit, index and clean up
        # under its lock, so that no clean-up sees a pack committed but not yet indexed.
        with _writing(root), _locked(cdir / "index.lock"):
            # none left: another process removed the temporary file (see _uncommitted); nothing is written
            if os.fstat(tmp.fd).st_nlink:
                # The meta goes first and the pack's rename commits the entry: whoever finds the pack finds its meta.
                meta = {"orig_sizes": sizes.tolist(), "config": config, "shape": list(shape), "keys": keys,
                        "sources": sources, "stamps": stamps, **({"value_max": tops.tolist()} if masks else {})}
                atomic_write_json(pack.with_suffix(".json"), {**meta, "checksum": checksum.result(pack, meta)})
                try:
                    with contextlib.suppress(FileNotFoundError):  # removed between the check and the rename
                        tmp.commit(pack)
                        committed = True
                finally:
                    if not committed and not pack.exists():  # a meta with no pack would stay until a clearing
                        pack.with_suffix(".json").unlink(missing_ok=True)
            if committed:
                # Mapped at once: the mapping stays readable if a later build's clean-up unlinks the pack.
                with open(pack, "rb") if reader is None else contextlib.nullcontext(reader) as f:
                    pixels = _map_pack(f, data_offset, shape)
                _index_pack(cdir, keys, pack_id, sources)
        if not committed:
            return _uncommitted(tmp.path, reader, data_offset, shape, sizes, squeeze, n_decoded,
                                tops if masks else None,
                                lambda: _build_in_memory(paths, tfm, mode, channels, squeeze, workers, description))
    return ImageStore(pixels, sizes, squeeze, n_decoded=n_decoded, n_reused=len(paths) - n_decoded, path=pack,
                      value_max=tops if masks else None)


def _read_back(tmp: TempFile) -> IO[bytes] | None:
    """The file ``tmp`` writes, opened for reading by its name once, just after it is made, and kept only when it is
    that very file (the same inode and device; no link followed): the build maps its pixels through it, whether the
    file is then committed or removed by another process before it could be (see :func:`_uncommitted`). None when it
    cannot be opened so."""
    try:
        f = open(os.open(tmp.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")
    except OSError:
        return None
    mine, got = os.fstat(tmp.fd), os.fstat(f.fileno())
    if (mine.st_ino, mine.st_dev) != (got.st_ino, got.st_dev):
        f.close()
        return None
    return f


def _uncommitted(path: Path, reader: IO[bytes] | None, header_len: int, shape: tuple[int, ...], sizes: np.ndarray,
                 squeeze: bool, n_decoded: int, value_max: np.ndarray | None,
                 in_memory: Callable[[], ImageStore]) -> ImageStore:
    """The images of a build whose temporary pack ``path`` another process removed before it could be committed (a
    clearing by an older pipekit, or by another machine sharing the folder, takes it for a killed build's; see
    :func:`~pipekit.data.cache.clean_stale_temps`), said by a CacheWriteWarning: its pixels, mapped through
    ``reader`` (the removed file stays readable while mapped), not cached; or, when it could not be read back,
    ``in_memory()``, decoded again."""
    warn(f"the presized images' temporary file {path} was removed by another process (a `pipekit cache clear`, or a "
         "build on another machine sharing the cache folder) before it could be kept: going on with them uncached, so "
         "this run works but the next one presizes them again. Clear the cache when no build is running",
         CacheWriteWarning)
    if reader is None:
        return in_memory()
    pixels = _map_pack(reader, header_len, shape)
    return ImageStore(pixels, sizes, squeeze, n_decoded=n_decoded, n_reused=shape[0] - n_decoded,
                      value_max=value_max)


def _free_space(folder: Path) -> int | None:
    """The bytes free on the disk of ``folder``, None when the system does not say."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _warn_no_room(folder: Path, need: int, room: int, shape: tuple[int, ...]) -> None:
    """Say that the pack of ``shape`` (``need`` bytes) does not fit in the ``room`` left on the disk of the cache
    ``folder``, so the images are presized in memory; and how to make room."""
    now = os.environ.get("PIPEKIT_CACHE")
    n, h, w, c = shape
    digits = 1  # enough digits that the two sizes read differently (0.2 MB free of 0.2 MB needed reads as room)
    while digits < 6 and f"{room / 1e6:.{digits}f}" == f"{need / 1e6:.{digits}f}":
        digits += 1
    warn(f"the cache folder {folder} has {room / 1e6:.{digits}f} MB free but these presized images need "
         f"{need / 1e6:.{digits}f} MB "
         f"({n} images of {w}x{h}x{c} bytes): going on with them in memory, so this run works but the next one "
         "decodes them again. Free space with `pipekit cache clear --images` (pipekit.clear_cache('images')), set "
         f"PIPEKIT_CACHE=<a folder on a disk with room>{f' (it is {now})' if now else ''}, or give {TURN_OFF} not to "
         "write a cache", CacheWriteWarning)


#: the most unreadable files one error names (the others are counted)
BROKEN_LISTED = 20


def _broken_error(broken: dict[int, ImageDecodeError]) -> ImageDecodeError:
    """One error naming the files of a build that cannot be read or decoded (``broken``: item -> its error), in item
    order, at most :data:`BROKEN_LISTED` of them: every file was tried, so they can all be fixed before the next build.
    A single one is raised as it is."""
    if len(broken) == 1:
        return next(iter(broken.values()))
    errors = [broken[i] for i in sorted(broken)]
    shown = "".join(f"\n  {e}" for e in errors[:BROKEN_LISTED])
    more = f"\n  ... and {len(errors) - BROKEN_LISTED} more" if len(errors) > BROKEN_LISTED else ""
    return ImageDecodeError(f"{len(errors)} of the image files cannot be read or decoded (every file was tried):"
                            f"{shown}{more}\nlist them all with pipekit.vision.verify_images(files), then re-save or "
                            "remove them")


def _first_image(take: Callable[[int], T | None], paths: Sequence[str | MemoryImage],
                 broken: dict[int, ImageDecodeError]) -> T:
    """``take(i)`` of the first item it gives an image for (the files before it that cannot be decoded are in
    ``broken``); raises :func:`_broken_error` when no file can be."""
    for i in range(len(paths)):
        got = take(i)
        if got is not None:
            return got
    raise _broken_error(broken)


def _build_in_memory(paths: list[str | MemoryImage], tfm: ItemTransform | None, mode: str, channels: int, squeeze: bool,
                     workers: int, description: str) -> ImageStore:
    broken: dict[int, ImageDecodeError] = {}

    def take(i: int) -> tuple[np.ndarray, tuple[int, int], int] | None:
        try:
            return _decode_one(paths[i], mode, tfm)
        except ImageDecodeError as e:
            broken[i] = e
            return None

    first, hw, top = _first_image(take, paths, broken)
    start = len(broken)  # the first readable item: decoded once, for its size too
    h, w = first.shape[:2]
    pixels = np.empty((len(paths), h, w, channels), dtype=np.uint8)
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    tops = np.zeros(len(paths), dtype=np.int64)
    pixels[start], sizes[start], tops[start] = first.reshape(h, w, channels), hw, top

    def fill(i: int) -> None:
        got = take(i)
        if got is None:
            return
        img, hw, top = got
        _check_size(img, (h, w), paths, i)
        pixels[i] = img
        sizes[i], tops[i] = hw, top

    rest = len(paths) - start - 1
    if rest < _CHUNK:  # a handful (predict's one image): decoded here, with no threads to start
        for i in range(start + 1, len(paths)):
            fill(i)
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="pipekit-build") as ex:
            for _ in progress_bar(_map_in_chunks(ex, lambda i: fill(i + start + 1), rest), total=rest,
                                  description=description):
                pass
    if broken:
        raise _broken_error(broken)
    return ImageStore(pixels, sizes, squeeze, n_decoded=len(paths), n_reused=0,
                      value_max=tops if mode == "mask" else None)



class ImagesAsRead(Store):
    """The presized images of ``paths``, each decoded (and put through ``tfm``) the first time it is gathered and
    kept in memory: what :func:`build_image_store` gives while :meth:`DataBlock.summary
    <pipekit.data.DataBlock.summary>` walks one batch, so that only the images the walk reads (its batch, and the
    sample ``Normalize()`` takes its statistics from) are decoded, and the image cache is not written. Its images are
    those :class:`ImageStore` gives (NHWC uint8, masks ``(B, H, W)``); its repr says how ``dataloaders()`` stores
    them (``cache``: the image cache's folder, None for memory).

    Making it reads every source's header (the head of each file, the whole file only where its header lies further
    on; a file without a header pipekit reads is decoded), and refuses what the
    build of an :class:`ImageStore` refuses that a header tells: files that cannot be read or decoded (one
    :class:`~pipekit.vision.decode.ImageDecodeError` naming them all) and, without an item transform, images of
    different sizes. ``orig_sizes`` are those headers' sizes; for masks, ``value_max`` is each mask's largest value,
    every mask decoded on the store's threads (as an :class:`ImageStore` records it, for a mask block to check
    against its codes).

    >>> import numpy as np
    >>> import pipekit.datasets as D
    >>> from pipekit.data import get_image_files
    >>> from pipekit.vision import Resize
    >>> files = sorted(get_image_files(D.path("mnist_tiny") / "train"))[:50]
    >>> store = ImagesAsRead(files, Resize(16), mode="L", cache=None)
    >>> tuple(store.gather(np.array([3, 7])).shape), store.n_decoded_, store.orig_sizes[7].tolist()
    ((2, 16, 16, 1), 3, [28, 28])
    """

    def __init__(self, paths: Sequence[str | MemoryImage], tfm: ItemTransform | None, mode: str,
                 cache: Path | None, num_workers: int | None = None):
        self.sources, self.tfm, self.mode, self.cache = list(paths), tfm, mode, cache
        self.squeeze, self.channels = mode == "mask", 3 if mode == "RGB" else 1
        self._images: dict[int, np.ndarray] = {}
        self._sizes: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._value_max: np.ndarray | None = None
        self._workers = num_workers or max(1, min(8, os.cpu_count() or 1))
        broken: dict[int, ImageDecodeError] = {}

        def measure(i: int) -> None:
            try:
                self.source_size(i)
            except ImageDecodeError as e:
                broken[i] = e

        n = len(self.sources)
        self._each(measure)
        if broken:  # every file was tried, as a build tries them
            raise _broken_error(broken)
        img = self._decode(0)  # the first image gives the size of them all
        self._hw = (int(img.shape[0]), int(img.shape[1]))
        if tfm is None:  # no item transform: the images are stored as they are, so they must share one size
            for i in range(n):
                _check_size(self._sizes[i], self._hw, self.sources, i)

    def _each(self, fn: Callable[[int], T]) -> list[T]:
        """``fn(i)`` of every image, in order: in the calling thread for a few images, else on a pool of the store's
        threads (files are read and decoded while the GIL is released)."""
        n = len(self.sources)
        if n <= _CHUNK:
            return [fn(i) for i in range(n)]
        with ThreadPoolExecutor(self._workers, thread_name_prefix="pipekit-headers") as ex:
            return list(_map_in_chunks(ex, fn, n))

    def _decode(self, i: int) -> np.ndarray:
        img = self._images.get(i)
        if img is None:
            img, hw, _ = _decode_one(self.sources[i], self.mode, self.tfm)
            img = img.reshape(img.shape[0], img.shape[1], self.channels)
            if hasattr(self, "_hw"):
                _check_size(img, self._hw, self.sources, i)
            with self._lock:
                self._images[i], self._sizes[i] = img, hw
        return img

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def n_decoded_(self) -> int:
        """How many images have been decoded so far."""
        return len(self._images)

    @property
    def size(self) -> tuple[int, int]:
        return self._hw

    @property
    def orig_sizes(self) -> _SizesAsRead:
        """Each image's (height, width) before its item transform, (N, 2), each read as it is asked for."""
        return _SizesAsRead(self)

    @property
    def crop_sizes(self) -> np.ndarray | None:
        # a random crop is drawn in the presized image's proportions: the sources' would need every image decoded
        return None

    @property
    def value_max(self) -> np.ndarray | None:
        """For masks, each mask's largest value as decoded, before the item transform, (N,) (every mask is decoded,
        once, and only its largest value kept); None for other images."""
        if self.mode != "mask":
            return None
        if self._value_max is None:
            def top(i: int) -> int:
                m = _decode_source(self.sources[i], "mask")
                return int(m.max()) if m.size else 0

            self._value_max = np.asarray(self._each(top), dtype=np.int64)
        return self._value_max

    def gather(self, idx: np.ndarray) -> torch.Tensor:
        rows = np.asarray(idx, dtype=np.int64).tolist()
        out = pooled_empty((len(rows), *self._hw, self.channels), np.uint8)
        for k, i in enumerate(rows):
            out[k] = self._decode(i)
        t = torch.from_numpy(out)
        return t[..., 0] if self.squeeze else t

    def source_size(self, i: int) -> tuple[int, int]:
        i = int(i)
        if i not in self._sizes:  # the header's size (pixels are decoded as stored, whatever EXIF says), else decoded
            wh = _header_size_of(self.sources[i])
            if wh is None:
                self._decode(i)
            else:
                with self._lock:
                    self._sizes[i] = (int(wh[1]), int(wh[0]))
        return self._sizes[i]

    def __repr__(self) -> str:
        where = f"in the image cache under {self.cache}" if self.cache is not None else "in memory"
        how = "decoded" if self.tfm is None else f"decoded and presized by {self.tfm!r}"
        return (f"ImageStore(n={len(self)}, size={self.size}, channels={self.channels}; dataloaders() keeps every "
                f"image {how} {where}, this summary decodes only the images it reads, in memory)")


class _SizesAsRead:
    """The ``orig_sizes`` of an :class:`ImagesAsRead`: ``sizes[i]`` reads image ``i``'s size (its header), and
    ``np.asarray(sizes)`` every image's, (N, 2); asking whether a store has sizes reads none."""

    def __init__(self, store: ImagesAsRead):
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> np.ndarray:
        return np.asarray(self.store.source_size(i), dtype=np.int64)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        sizes = [self.store.source_size(i) for i in range(len(self.store))]
        return np.asarray(sizes, dtype=dtype or np.int64).reshape(-1, 2)


class UserItemSteps(Protocol):
    """What a :class:`LiveImageStore` runs on each decoded image, those of split ``split_idx`` (0 training, 1
    validation and new items): ``apply_user``, a user's item transforms of a lower ``order`` than the presize
    transform, then ``presize`` (the block's ``Resize``, or None), then ``apply_user(..., after=True)``, the user's
    transforms of a higher ``order`` (``after``, empty when there are none)."""

    presize: ItemTransform | None

    @property
    def after(self) -> Sequence[Any]: ...

    def apply_user(self, img: np.ndarray, split_idx: int, after: bool = False) -> np.ndarray: ...


class LiveImageStore(Store):
    """Images that go through a user's item transforms each time they are fetched, as fastai runs item transforms:
    ``gather`` decodes each item, runs the transforms of the loader's split (a training loader's items split 0,
    validation, ``test_dl`` and ``predict``'s split 1; see :func:`~pipekit.data.transform.runs_on_split`), calling
    the ``before_call(item, split_idx=...)`` of those that have one (a :class:`~pipekit.data.transform.RandTransform`
    draws ``do`` there and is skipped when it is False) with the presize transform where their orders put it (those
    of a lower order than fastai's ``Resize``, 1, before it; those of a higher one on the resized image; see
    :class:`UserItemSteps`), and gives
    the NHWC uint8 batch :meth:`ImageStore.gather` gives (masks ``(B, H, W)``). A random transform so draws anew
    every epoch; these images are never cached (the cache cannot key a user's code).

    The draws are repeatable: for each item, Python's ``random`` and NumPy's global generator (``np.random``) are
    seeded from the loader batch's key (seed, epoch, batch; see :func:`~pipekit.data.store.gathering`), the item's
    row and its place in the batch, and given back their previous states afterwards. The same seed gives the same
    images epoch by epoch, and an image and its mask get the same draws. Those generators are the process's, so a
    loader of this store makes its batches in the thread that iterates it (``draws_per_fetch``; no prefetch
    threads, whatever ``num_workers`` says): code drawing from them around the loop gets the numbers it would get
    without it. Another thread drawing from them while a batch is made shares them, and changes the draws of the
    items made meanwhile (and they its numbers). Gathered outside a loader (``store.gather``, ``store.item``) an
    item is of split 1 with a fixed key. Draws from torch's generator are not made repeatable (it is not reseeded:
    the training thread draws dropout from it).

    Decoding is done once when the store is made, to read each image's source size (``orig_sizes``, before any
    transform) and to find unreadable files then; the first item goes through the transforms of both splits, so a
    transform that fails on images (one written for the labels) is named when the data is built. ``check(source,
    image)``, when given, is called on what the transforms make of each source (at build, what the validation
    items' transforms make; then each image fetched): with no user transform after the presize transform, on the
    image before it (whose resize or crop may drop a mask's values); with some, on the image the last one makes, and
    also on the values the presize transform drops entirely, so a resize cannot hide them. A mask block checks its
    values against its codes, naming the first file outside them; a transform remapping a source's values into them
    (before the resize, or after it on values the resize keeps) passes.
    """

    #: its items draw from the process's random generators each time they are fetched (see DataLoader)
    draws_per_fetch = True

    def __init__(self, items: Sequence[str | os.PathLike | MemoryImage], steps: UserItemSteps, mode: str = "RGB",
                 check: Callable[[str | MemoryImage, np.ndarray], None] | None = None,
                 num_workers: int | None = None, description: str = "reading images"):
        self.sources: list[str | MemoryImage] = [p if isinstance(p, MemoryImage) else os.fspath(p)  # type: ignore[misc]
                                                 for p in items]
        if not self.sources:
            raise ValueError("no image files to load: the item list is empty; check get_items and the folder")
        self.steps, self.mode, self.check = steps, mode, check
        self.squeeze, self.channels = mode == "mask", 3 if mode == "RGB" else 1
        first = _decode_source(self.sources[0], mode)
        sizes = np.zeros((len(self.sources), 2), dtype=np.int64)
        sizes[0] = first.shape[:2]
        self._hw: tuple[int, int] | None = None
        self._keeps_size = True  # whether the user's transforms keep the first item's size (judged at build)
        # the first item through both splits' transforms before the others are read: a failing transform is named now
        valid, train = (self._transform([first.copy()], np.zeros(1, dtype=np.int64), (), split)[0] for split in (1, 0))
        if train.shape[:2] != valid.shape[:2]:
            raise DataError(f"{self.sources[0]}: the item transforms make it {train.shape[1]}x{train.shape[0]} on "
                            f"training items but {valid.shape[1]}x{valid.shape[0]} on validation ones; every image "
                            "of a batch has one size: end item_tfms with one that sets it, such as Resize(224)")
        self._hw = (int(valid.shape[0]), int(valid.shape[1]))

        def read(i: int) -> None:
            img = _decode_source(self.sources[i], mode)
            sizes[i] = img.shape[:2]
            if check is not None:  # what the validation items' transforms make of it (a mask remapped into its
                # codes passes), as a store built once is checked; a random transform's later draws, as they come
                self._transform([img], np.asarray([i], dtype=np.int64), (), 1)

        workers = num_workers or max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(workers, thread_name_prefix="pipekit-build") as ex:
            for _ in progress_bar(_map_in_chunks(ex, lambda i: read(i + 1), len(self.sources) - 1),
                                  total=len(self.sources) - 1, description=description):
                pass
        self.orig_sizes = sizes

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def crop_sizes(self) -> np.ndarray | None:
        """The (height, width) of each image as the presize transform gets it, the proportions a random crop is
        drawn in: the sources' (``orig_sizes``) when the user's transforms keep the size of the image they get (a
        flip, a colour change; the presize transform's own resize aside), None when they change it (a crop of the
        user's), so the crop is drawn in the cached image's."""
        return self.orig_sizes if self._keeps_size else None

    @property
    def size(self) -> tuple[int, int]:
        """The (height, width) of every image the store gives."""
        assert self._hw is not None
        return self._hw

    def _transform(self, imgs: list[np.ndarray], rows: np.ndarray, key: tuple[int, ...],
                   split_idx: int) -> list[np.ndarray]:
        """``imgs`` (decoded, of store rows ``rows``) through the steps of split ``split_idx`` (see
        :class:`UserItemSteps`), the user's transforms seeded per item from ``key``, each image checked."""
        # the generators are the process's, and a RandTransform keeps its draw (``self.do``) on itself between calls:
        # one seeded run at a time, the generators given back their states after it (see item_draws)
        with stage("item transforms"), item_draws(key) as seed:
            for k, row in enumerate(rows.tolist()):
                seed(row, k)
                imgs[k] = self._one(imgs[k], row, split_idx)
        return imgs

    def _one(self, img: np.ndarray, row: int, split_idx: int) -> np.ndarray:
        steps, presize, source = self.steps, self.steps.presize, self.sources[row]
        later = bool(steps.after)  # user transforms on the presized image
        img = self._user(img, split_idx, False)
        if self.check is not None and not later:  # before the presize transform, whose resize or crop may drop a
            self.check(source, img)               # mask's values
        if presize is not None:
            with stage(f"item transform {type(presize).__name__}"):
                out = presize.apply(img, nearest=self.squeeze)
            if self.check is not None and later:
                self._check_dropped(source, img, out)
            img = out
        if later:
            img = self._user(img, split_idx, True)
            if self.check is not None:  # what the whole chain makes (a transform remapping values passes)
                self.check(source, img)
        if self._hw is not None:
            _check_size(img, self._hw, self.sources, row)
        return img

    def _user(self, img: np.ndarray, split_idx: int, after: bool) -> np.ndarray:
        out = self.steps.apply_user(img, split_idx, after=after)
        if self._hw is None and out.shape[:2] != img.shape[:2]:  # building: a crop drawn in the source's
            self._keeps_size = False  # proportions reads them from orig_sizes only when the size is kept
            presize = self.steps.presize
            if after and isinstance(presize, RandomResizedCrop):
                # its training crop is drawn per batch from the presized image these transforms get: one of them
                # resizing or cropping it would be undone by that crop
                names = ", ".join(f"{type(t).__name__}(order={t.order})" for t in self.steps.after)
                raise ParameterError(
                    f"item transform(s) {names} follow {presize!r} (order {presize.order}) in item_tfms and change "
                    f"the size of the image they get ({img.shape[1]}x{img.shape[0]} -> {out.shape[1]}x"
                    f"{out.shape[0]}): pipekit draws RandomResizedCrop's crop per batch from the presized image, "
                    f"after the item transforms, so their crop would be undone; give Resize({presize.size!r}) and a "
                    "random crop of your own among those transforms, or give them order=0 to run them on the "
                    "decoded image before RandomResizedCrop")
        return out

    def _check_dropped(self, source: str | MemoryImage, img: np.ndarray, out: np.ndarray) -> None:
        """``check`` on the values of ``img`` that the presize transform dropped entirely from ``out`` (those it
        kept, the user's later transforms get, and the check judges what they make of them)."""
        assert self.check is not None
        try:
            self.check(source, img)
        except DataError:
            dropped = np.setdiff1d(np.unique(img), np.unique(out))
            if dropped.size:
                self.check(source, dropped.astype(img.dtype).reshape(1, -1, 1))

    def gather(self, idx: np.ndarray) -> torch.Tensor:
        idx = np.asarray(idx, dtype=np.int64)
        key, split_idx = gather_context()
        imgs = self._transform([_decode_source(self.sources[r], self.mode) for r in idx.tolist()], idx, key, split_idx)
        out = pooled_empty((len(idx), *self.size, self.channels), np.uint8)
        for k, img in enumerate(imgs):
            out[k] = img
        t = torch.from_numpy(out)
        return t[..., 0] if self.squeeze else t

    def subset(self, idx: np.ndarray) -> LiveImageStore:
        out = copy.copy(self)
        idx = np.asarray(idx, dtype=np.int64)
        out.sources = [self.sources[i] for i in idx.tolist()]
        out.orig_sizes = self.orig_sizes[idx]
        return out

    def source_size(self, i: int) -> tuple[int, int]:
        h, w = self.orig_sizes[int(i)]
        return int(h), int(w)

    def __repr__(self) -> str:
        return (f"LiveImageStore(n={len(self)}, size={self.size}, channels={self.channels}, item transforms run "
                f"per fetch)")
