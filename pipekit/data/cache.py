"""What pipekit's on-disk caches share: keys, checksummed packs, atomic writes and stale-file cleanup.

The presized-image cache (:mod:`pipekit.vision.cache`) and the token-id cache (:mod:`pipekit.text.store`)
each keep their own layout; both use this module so that a cache trusts only bytes it can prove it wrote:

- :func:`fingerprint` keys an entry (blake2b over length-prefixed parts: file bytes, settings, buffers).
- :func:`cache_folder` says where a kind of cache lives (``$PIPEKIT_CACHE/<sub>`` or ``<folder>/<sub>``).
- A *pack* (one large memory-mapped file) gets a checksum computed while it is written, by
  :class:`PackChecksum` (records written out of order from threads) or :class:`ChecksumWriter` (a
  stream); :func:`verify_pack` checks it once when the pack is opened, never per batch, against the layout
  the caller expects (a record that names another record size or header is refused before any byte is read);
  :func:`open_verified` opens it once, so that what is then mapped is the very file that was checked.
- The checksum record is *signed*: an HMAC-SHA256, under this user's secret key (:func:`cache_signing_key`),
  of where the entry is (its folder and file name), the pack's checksum (so every byte of the pack) and the
  rest of the meta file the record is stored in (an image pack's source sizes and file keys, a token entry's
  vocabulary and tokenizer state). The key is 32 random bytes in ``$XDG_CONFIG_HOME/pipekit/cache.key``
  (default ``~/.config/pipekit/cache.key``, or the file ``$PIPEKIT_CACHE_KEY_FILE`` names), mode 0600 and
  outside the cache folder. That is what is trusted, and why: whoever else can write a cache folder (a shared
  ``PIPEKIT_CACHE``, a folder copied from someone) can recompute a plain checksum, but not this signature, so
  an entry this user's pipekit did not write (or one written before entries were signed) is rebuilt with a
  :class:`CacheRebuildWarning` instead of being served. Anyone who can read the key file or run as this user
  can still forge entries; a key file that others can read, that another user owns or that is not a plain
  32-byte file is not used. The same signature (:func:`sign_fields`) vouches for the copy of pretrained weights
  pipekit keeps under ``PIPEKIT_CACHE`` (:mod:`pipekit.vision.pretrained`, a pack); a downloaded data set's folder
  is trusted by who owns it instead (:mod:`pipekit.data.external`). Where no key can be kept (no writable config folder), a key for this process only
  is used and a :class:`CacheWriteWarning` says so: entries then serve this run and are rebuilt by the next.
- Meta files are self-checking JSON (:func:`atomic_write_json`, :func:`read_json`): a missing field, a
  wrong type, a cut-off or edited file is reported with the file and the field. That checksum is not keyed:
  it catches accidents (a cut-off copy, a hand edit), and what a meta says is trusted only through the
  signature of the checksum record stored in it.
- Every file is written to a temporary file and renamed into place (:class:`TempFile`, :func:`atomic_write`), so a
  reader never sees half a file; :func:`clean_stale_temps` removes what a killed build left (the rule is documented
  there). The temporary file is created new, never opened where something already is
  (:func:`pipekit.core.archive.new_temp_file`: ``O_CREAT|O_EXCL|O_NOFOLLOW``), and written through the descriptor that
  created it.
- No link inside a cache folder is followed when writing or deleting (temporary files as above, :func:`link_target`,
  :func:`remove_link`; a rename replaces a link at the destination): a shared or copied folder cannot make a build or
  a clearing write or delete outside it.
- A cache folder that cannot be written is not an error: :func:`warn_unwritable` says so once and how to fix
  it, and the caller keeps the data in memory.
- :data:`CACHE_KINDS` names the caches; :func:`cache_usage` measures one and :func:`remove_cache_folder`
  clears it (``pipekit.clear_cache``, ``pipekit cache info|clear``).

A check that fails raises :class:`CacheEntryError`; the caller warns with :func:`warn_rebuild` (a
:class:`CacheRebuildWarning` naming the file and what was wrong) and rebuilds the entry from the source data.

Example:
    >>> import tempfile
    >>> scratch = tempfile.TemporaryDirectory()
    >>> folder = Path(scratch.name)
    >>> atomic_write_json(folder / "meta.json", {"n": 3})
    >>> read_json(folder / "meta.json", {"n": int})
    {'n': 3}
    >>> with TempFile(folder, "pack") as tmp:
    ...     with tmp.open() as raw:
    ...         sink = ChecksumWriter(raw)
    ...         _ = sink.write(b"some bytes")
    ...     tmp.commit(folder / "pack.bin")
    >>> record = sink.checksum(folder / "pack.bin", {"n": 3})
    >>> verify_pack(folder / "pack.bin", record, header_len=0, record_len=STREAM_RECORD, meta={"n": 3}) is None
    True
    >>> verify_pack(folder / "pack.bin", record, header_len=0, record_len=STREAM_RECORD, meta={"n": 4})
    "it was not written by this user's pipekit (its signature does not match this user's cache key)"
    >>> scratch.cleanup()
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import os
import re
import socket
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np

from pipekit.core.archive import atomic_write_bytes, new_temp_file
from pipekit.core.errors import ParameterError, PipekitWarning, warn
from pipekit.data.external import pipekit_cache_dir

try:
    import fcntl as _fcntl
except ImportError:  # Windows: no advisory file locks, so concurrent builds there take none
    _fcntl = None  # type: ignore[assignment]

#: The checksum scheme of packs: SHA-256 of each record, then SHA-256 of the layout and those digests.
#: SHA-256 rather than blake2b: CPUs with SHA instructions hash it ~2.7x faster (1.1 GB/s against 0.42 GB/s
#: per core measured here), and verifying is most of a warm cache open. Version 2 adds the record's signature
#: (HMAC-SHA256 under this user's cache key, see :func:`cache_signing_key`): entries of version 1 are rebuilt.
CHECKSUM_ALGO = "sha256-records-2"
#: The environment variable naming the file of this user's cache key, in place of
#: ``$XDG_CONFIG_HOME/pipekit/cache.key`` (default ``~/.config/pipekit/cache.key``): for tests, CI, a shared home.
KEY_FILE_ENV = "PIPEKIT_CACHE_KEY_FILE"
#: The size of the cache key in bytes (from ``os.urandom``): the length of a SHA-256 digest, as HMAC-SHA256 wants.
KEY_BYTES = 32
#: Record size when a pack is written as one stream (the token-id cache); also the unit of parallel verifying.
STREAM_RECORD = 1 << 20
#: A temporary file untouched for this long is stale whoever wrote it (see :func:`clean_stale_temps`).
STALE_AFTER_S = 6 * 3600
#: An empty entry folder unchanged for this long is removed (see :func:`clean_stale_temps`).
EMPTY_AFTER_S = 60
TEMP_SUFFIX = ".pk-tmp"
_DIGEST = 32
# Each verifying task reads this many bytes with one pread, then hashes the records in them.
_TASK_BYTES = 8 << 20
_HOST = hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()
_TEMP_RE = re.compile(r"^(?P<stem>.+)\.(?P<pid>\d+)\.(?P<host>[0-9a-f]{8})\.(?P<token>[0-9a-f]{8})"
                      + re.escape(TEMP_SUFFIX) + "$")
_JSON_HEAD = b'{"sha256":"'
_JSON_MID = b'","data":'
_JSON_TAIL = b"}\n"


class CacheEntryError(Exception):
    """A cache file failed a check; ``reason`` says what was wrong (the caller rebuilds the entry)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CacheRebuildWarning(PipekitWarning):
    """A cache file could not be trusted and is being rebuilt from the source data (a :class:`PipekitWarning`)."""


#: The reason given for an entry an older pipekit wrote (its checksum record is of an older CHECKSUM_ALGO).
OLDER_ENTRY = "made by an older pipekit"


def _made_by_older(obj: Any) -> str | None:
    """Why the meta ``obj`` is an entry an older pipekit wrote (whose fields may differ from this version's): it
    holds a checksum record of an older version of :data:`CHECKSUM_ALGO`; None when it does not."""
    def version(algo: str) -> int | None:
        head, _, number = algo.rpartition("-")
        return int(number) if head == CHECKSUM_ALGO.rpartition("-")[0] and number.isdigit() else None

    current = version(CHECKSUM_ALGO)
    for v in obj.values() if isinstance(obj, dict) else ():
        algo = v.get("algo") if isinstance(v, dict) else None
        old = version(algo) if isinstance(algo, str) else None
        if old is not None and current is not None and old < current:
            return f"{OLDER_ENTRY} (its checksum is of kind {algo!r}, this version's is {CHECKSUM_ALGO!r})"
    return None


def warn_rebuild(path: str | os.PathLike, reason: str) -> None:
    """Warn that the cache file ``path`` failed its checks because of ``reason`` and is rebuilt; an entry an older
    pipekit made (:data:`OLDER_ENTRY`) is said to be so, rebuilt once in this version's format."""
    if reason.startswith(OLDER_ENTRY):
        warn(f"cache file {path}: {reason}; rebuilt once from the source data in this version's format",
             CacheRebuildWarning)
        return
    warn(f"cache file {path}: {reason}; rebuilding it from the source data", CacheRebuildWarning)


class CacheWriteWarning(PipekitWarning):
    """A cache folder could not be written; the data is kept in memory for this run and built again next run (a
    :class:`PipekitWarning`)."""


_UNWRITABLE_SAID: set[tuple[type[Warning], str]] = set()  # (kind of warning, folder) already said in this process


def warn_unwritable_once(folder: str | os.PathLike, kind: type[Warning], message: Callable[[str], str]) -> None:
    """Warn ``message(folder)`` as a ``kind`` warning, once per ``kind``, ``folder`` and process: that ``folder``
    cannot be written and the caller goes on without writing there (the cache folders, the plot folder)."""
    key = os.fspath(folder)
    if (kind, key) in _UNWRITABLE_SAID:
        return
    _UNWRITABLE_SAID.add((kind, key))
    warn(message(key), kind)


def warn_unwritable(folder: str | os.PathLike, error: OSError, what: str, turn_off: str) -> None:
    """Warn, once per ``folder`` and process (:func:`warn_unwritable_once`), that the cache ``folder`` cannot be
    written (``error``): the caller goes on with ``what`` in memory. The message says both ways out: a writable
    ``PIPEKIT_CACHE`` (or cache folder), or ``turn_off``, the argument that keeps the cache off disk."""
    def message(key: str) -> str:
        now = os.environ.get("PIPEKIT_CACHE")
        return (f"the cache folder {key} cannot be written ({error.strerror or error}): going on with the {what} in "
                f"memory, so this run works but the next one builds them again. Set PIPEKIT_CACHE=<a writable "
                f"folder>{f' (it is {now})' if now else ''} or give cache_dir=<a writable folder> to keep them, or "
                f"give {turn_off} not to write a cache")

    warn_unwritable_once(folder, CacheWriteWarning, message)


# ---------------------------------------------------------------------------------------- keys, folders
def _digest(data: Any) -> bytes:
    return hashlib.sha256(data).digest()


def fingerprint(*parts: str | bytes | memoryview | Any, digest_size: int = 16) -> str:
    """Hex blake2b of ``parts`` (str, bytes or any buffer such as an Arrow buffer or a NumPy array).

    Each part is prefixed with its length, so ``("ab", "c")`` and ``("a", "bc")`` differ.

    >>> fingerprint("settings", b"bytes") == fingerprint("setting", b"sbytes")
    False
    >>> len(fingerprint("x", digest_size=8))
    16
    """
    h = hashlib.blake2b(digest_size=digest_size)
    for p in parts:
        view = memoryview(p.encode() if isinstance(p, str) else p)
        if not view.c_contiguous:
            raise ValueError("fingerprint needs contiguous buffers; pass np.ascontiguousarray(x)")
        view = view.cast("B")
        h.update(len(view).to_bytes(8, "little"))
        h.update(view)
    return h.hexdigest()


def cache_folder(cache_dir: str | os.PathLike | bool | None, sub: str) -> Path | None:
    """The folder of cache kind ``sub``: ``$PIPEKIT_CACHE/sub`` for None/True, ``cache_dir/sub`` for a
    folder, None for False (no disk cache).

    >>> cache_folder("/tmp/c", "images").as_posix(), cache_folder(False, "images")
    ('/tmp/c/images', None)
    """
    if cache_dir is False:
        return None
    if cache_dir is None or cache_dir is True:
        return pipekit_cache_dir(sub)
    return Path(cache_dir) / sub



def keyed_by_settings(obj: Any) -> bool:
    """Whether the on-disk cache may keep what ``obj`` (a tokenizer, an image item transform) makes under its class
    name and settings: only when its class is pipekit's own, whose settings say all its output depends on. A class of
    the user's (a subclass of ``Resize`` or ``Tokenizer`` overriding how it works) can change between two runs under
    the same name and settings, so its output is made afresh at each build, as fastai runs it each time.

    >>> from pipekit.vision import Resize
    >>> class MyResize(Resize): ...
    >>> MyResize.__module__ = "__main__"  # as a script's class is
    >>> keyed_by_settings(Resize(28)), keyed_by_settings(MyResize(28))
    (True, False)
    """
    return type(obj).__module__.startswith("pipekit.")

#: The kinds of on-disk cache (the names ``clear_cache`` and ``pipekit cache`` take) and their sub-folders of
#: ``$PIPEKIT_CACHE``: presized images (:mod:`pipekit.vision.cache`) and token ids (:mod:`pipekit.text.store`).
CACHE_KINDS = {"images": "images", "tokens": "text"}
#: The name of an image pack (``<id>.npy``, its meta ``<id>.json``): a 12-byte fingerprint of its keys and settings.
PACK_ID = re.compile(r"[0-9a-f]{24}")
#: The share of an entry's items (an image pack's files, a token entry's texts) a build with the same settings must
#: take over for that entry to be superseded and deleted (an image pack's, the newer packs together: samples of a
#: folder taken in turn leave no pack per sample): cleaning or editing a data set takes nearly all of them; a build of
#: a subset or an overlapping sample of it takes fewer, and the data set's own entry is kept for its next build (see
#: :func:`pipekit.vision.cache._index_pack` and :func:`pipekit.text.store.save_cached`).
SUPERSEDED_SHARE = 0.75


def superseded(taken: int, listed: int) -> bool:
    """Whether an entry listing ``listed`` items, ``taken`` of which a new build of the same settings takes over, is
    superseded by it (:data:`SUPERSEDED_SHARE`): the one rule of the image packs and the token entries.

    >>> superseded(3, 4), superseded(2, 4), superseded(0, 0)
    (True, False, False)
    """
    return listed > 0 and taken >= SUPERSEDED_SHARE * listed
#: What pipekit writes in the folder of each cache kind (by sub-folder name), so that measuring and clearing it touch
#: nothing else: entry folders named by a fingerprint (16 hex digits: an image mode and size; 32: a text column and
#: its settings) holding files of these names, and the temporary files of builds (:func:`temp_name`). Anything else
#: there, such as a project's own images/ or text/ under a PIPEKIT_CACHE that is also a project folder, is kept.
CACHE_LAYOUTS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    "images": (re.compile(r"[0-9a-f]{16}"), re.compile(rf"index\.json|index\.lock|{PACK_ID.pattern}\.(npy|json)")),
    "text": (re.compile(r"[0-9a-f]{32}"), re.compile(r"meta\.json|ids\.arrow")),
}
#: The file an entry of a cache kind is locked by (:func:`lock_file`) while a build commits into it, by sub-folder
#: name: an image entry's builds commit their packs and rewrite its index one at a time (:mod:`pipekit.vision.cache`).
ENTRY_LOCKS = {"images": "index.lock"}
#: How long a clearing waits for a build committing into an entry to let go of its lock (see
#: :func:`clear_cache_folder`). A commit holds it for a fraction of a second (writing a meta, renaming the pack,
#: rewriting the index: 30-250 ms for dogscats' 4,000 images here, on a machine busy with other work); past that
#: the build is taken for stuck.
LOCK_WAIT_S = 5.0


def link_target(path: str | os.PathLike[str]) -> str | None:
    """Where ``path`` points when it is a symbolic link, None when it is not one (or does not exist): the one check of
    links in cache folders, a single lstat.

    A cache folder may be shared or copied from someone else, so a link where pipekit expects its own entry folder,
    lock or file would make a build write or delete through it, outside the cache: pipekit follows none there. Only
    the folder of a cache kind itself (``$PIPEKIT_CACHE/images``), which a user may link to another disk on purpose,
    is followed.
    """
    if not (path.is_symlink() if isinstance(path, os.DirEntry) else os.path.islink(path)):  # a listing knows
        return None
    try:
        return os.readlink(path)
    except OSError:  # removed meanwhile, or unreadable: a link all the same
        return "an unreadable target"


def remove_link(path: Path) -> bool:
    """Remove ``path`` when it is a symbolic link (the link itself, never what it points to), with a
    CacheRebuildWarning naming it and its target, so that the caller builds a real folder or file in its place;
    returns whether there was one. Raises OSError, naming the link, when it cannot be removed (another user's link
    in a shared folder): the caller then keeps its data in memory (:func:`warn_unwritable`)."""
    target = link_target(path)
    if target is None:
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:  # removed meanwhile by another build
        pass
    except OSError as e:
        raise OSError(e.errno, f"{path} is a link to {target}, which pipekit does not follow in a cache, and it "
                               f"cannot be removed ({e.strerror or e}); remove it") from None
    warn_rebuild(path, f"is a link to {target}, which pipekit does not follow in a cache; the link was removed "
                       "(what it points to is untouched)")
    return True


def _cache_contents(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """What is in the cache ``folder``, by :data:`CACHE_LAYOUTS`: pipekit's files (a link bearing the name of one of
    its files or entries counts as one: removing it removes the link only), its entry folders, and the rest. Links
    are never followed inside ``folder``; ``folder`` itself may be a link."""
    ours: list[Path] = []
    entries: list[Path] = []
    others: list[Path] = []
    layout = CACHE_LAYOUTS.get(folder.name)
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # no such folder (or not a folder, or unreadable): nothing of pipekit's to find there
        return ours, entries, others
    for name in names:
        path = folder / name
        if link_target(path) is not None:
            (ours if _TEMP_RE.match(name) or (layout and layout[0].fullmatch(name)) else others).append(path)
        elif not path.is_dir():
            (ours if _TEMP_RE.match(name) else others).append(path)
        elif layout is None or not layout[0].fullmatch(name):
            others.append(path)
        else:
            entries.append(path)
            try:
                inner = sorted(os.listdir(path))
            except OSError:
                continue
            for sub in inner:
                item = path / sub
                mine = _TEMP_RE.match(sub) or layout[1].fullmatch(sub)
                (ours if mine and (link_target(item) is not None or not item.is_dir()) else others).append(item)
    return ours, entries, others


def cache_usage(folder: Path | None) -> tuple[int, int]:
    """``(bytes, entries)`` of the cache ``folder``: the size of what pipekit wrote there (:data:`CACHE_LAYOUTS`) and
    the number of its entries; ``(0, 0)`` when it does not exist. Links inside are not followed."""
    if folder is None:
        return 0, 0
    ours, entries, _ = _cache_contents(folder)
    size = 0
    for path in ours:
        with contextlib.suppress(OSError):  # removed meanwhile by another process
            size += os.lstat(path).st_size
    return size, len(entries)


def image_cache_copies(folder: Path | None) -> list[tuple[str, int, int]]:
    """``(settings, copies, bytes)`` of each entry of the presized-image cache ``folder`` (``$PIPEKIT_CACHE/images``):
    the image mode and item transform its packs were made with (as their meta says), how many packs (copies of the
    images, one per data set or per version of one kept) it holds and their size with their meta files. Entries in
    order of size, largest first; links inside are not followed.

    >>> image_cache_copies(None)
    []
    """
    if folder is None:
        return []
    out = []
    for entry in _cache_contents(folder)[1]:
        packs, size, settings = 0, 0, None
        with contextlib.suppress(OSError):  # removed meanwhile by another process
            for f in sorted(entry.iterdir()):
                if link_target(f) is not None or not PACK_ID.fullmatch(f.stem) or f.suffix not in (".npy", ".json"):
                    continue
                with contextlib.suppress(OSError):
                    size += os.lstat(f).st_size
                packs += f.suffix == ".npy"
                if f.suffix == ".json" and settings is None:
                    with contextlib.suppress(CacheEntryError):
                        config = read_json(f, {"config": str})["config"].split("|")[1:]  # after the version
                        settings = ", ".join(p if p != "none" else "no item transform" for p in config)
        out.append((settings or f"{entry.name} (settings unreadable)", packs, size))
    return sorted(out, key=lambda e: -e[2])


@contextlib.contextmanager
def lock_file(path: Path, wait_s: float | None = None, create: bool = True) -> Iterator[bool]:
    """Hold an exclusive advisory lock (``flock``) on the file ``path`` against other processes; yields False when
    ``wait_s`` seconds passed before it could be taken (None: wait as long as it takes), True otherwise. ``create``:
    make the file when it is missing; else there is nothing to hold, and True is yielded. A link at ``path`` is not
    followed (OSError). Where the platform or file system has no ``flock`` (Windows, some network file systems),
    nothing is held.

    The lock held is on the file found at ``path`` once it is taken: a file removed or replaced while this waited for
    it (a clearing removes an entry's lock file while holding it) is let go and the one now there locked instead, so
    that two processes never each hold a lock on a file of that name."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    # not blocking: a named pipe planted in the lock's place would hold an open for reading forever
    flags = (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY) | getattr(os, "O_NOFOLLOW", 0) | _NONBLOCK
    while True:
        try:
            fd = os.open(path, flags, 0o666)
        except FileNotFoundError:
            if create:
                raise
            yield True  # no lock file: no build is committing there
            return
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a pipe, a device...: no build's lock, and none to hold
            os.close(fd)
            if not create:
                yield True
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # (the file pipekit makes in its place is a plain one)
            continue
        try:
            held = _flock(fd, deadline)
            if held is not True or _is_at(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed or replaced while waited for: lock the file there now
    try:
        yield held is not False
    finally:
        os.close(fd)  # closing releases the lock


def _flock(fd: int, deadline: float | None) -> bool | None:
    """Lock ``fd`` exclusively, waiting until ``deadline`` (``time.monotonic``; None: as long as it takes): True when
    locked, False when the deadline passed first, None when the platform or file system offers no lock."""
    if _fcntl is None:
        return None
    while True:
        try:
            _fcntl.flock(fd, _fcntl.LOCK_EX | (0 if deadline is None else _fcntl.LOCK_NB))
            return True
        except BlockingIOError:  # held by another process (only asked without waiting, with a deadline)
            if deadline is None or time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        except OSError:  # ENOLCK: the file system offers no locks
            return None


def _is_at(fd: int, path: Path) -> bool:
    """Whether the file open as ``fd`` is the one at ``path`` (a link there is not followed)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (st.st_ino, st.st_dev) == (mine.st_ino, mine.st_dev)


def remove_cache_folder(folder: Path | None) -> int:
    """Delete what pipekit wrote in the cache ``folder`` (:data:`CACHE_LAYOUTS`: its entry folders with their packs,
    meta, index and lock files, and temporary files), then ``folder`` when that leaves it empty; returns the bytes
    freed. Links inside are removed, never followed; ``folder`` itself may be a link (a cache moved to another
    disk): the entries in the folder it points to are deleted and the link is kept.

    Anything else in it (a user's files, where ``PIPEKIT_CACHE`` is also a project folder) is kept, with a warning
    naming it. What could not be removed, in a read-only folder, stays and is not counted
    (:func:`clear_cache_folder` says how much). The temporary file of a build still running (see
    :func:`clean_stale_temps`) stays too, and is not counted: that build goes on and writes its entry. A warning
    names what was kept."""
    return clear_cache_folder(folder)[0]


def clear_cache_folder(folder: Path | None) -> tuple[int, int]:
    """:func:`remove_cache_folder`, returning ``(bytes freed, bytes of pipekit's files that could not be removed)``
    from one listing of ``folder``, each file measured as it is removed (``pipekit cache clear`` reports both, and
    says the warnings: the temporary files of builds still running that were kept, files that are not pipekit's).

    An entry with a lock file (:data:`ENTRY_LOCKS`) is emptied holding its lock, so that no build commits into it
    meanwhile; one whose lock a build holds longer than :data:`LOCK_WAIT_S` is not waited for, and kept whole (that
    build is writing its meta and index there). The lock file of an entry holding the temporary file of a build still
    running is kept too: that build locks it to commit, and every build must lock the same file (two builds
    committing at once could each delete the pack the other just wrote)."""
    if folder is None:
        return 0, 0
    freed = left = 0
    ours, entries, others = _cache_contents(folder)
    now = time.time()
    lock_name = ENTRY_LOCKS.get(folder.name)
    by_folder: dict[Path, list[Path]] = {}
    for path in ours:
        by_folder.setdefault(path.parent, []).append(path)
    live: list[tuple[Path, int]] = []  # the temporary files of builds still running, and their sizes
    busy: list[Path] = []  # the entries a build held locked for longer than LOCK_WAIT_S, kept
    for parent, paths in by_folder.items():
        # the temporary file of a build still running (the rule of clean_stale_temps) is kept: deleting it would make
        # that build lose what it decoded; the build commits it as a new entry, which a later clearing removes
        running = {p for p in paths if _TEMP_RE.match(p.name) and link_target(p) is None and not is_stale_temp(p, now)}
        for p in running:
            with contextlib.suppress(OSError):  # committed or removed meanwhile: no longer running
                live.append((p, os.lstat(p).st_size))
        lock = parent / lock_name if lock_name is not None and parent != folder else None
        with contextlib.ExitStack() as stack:
            held = True
            if lock is not None and link_target(lock) is None:
                with contextlib.suppress(OSError):  # unreadable: nothing can be held
                    held = stack.enter_context(lock_file(lock, LOCK_WAIT_S, create=False))
            if not held:
                busy.append(parent)
                continue
            for path in paths:
                if path in running or (path == lock and running):
                    continue
                try:
                    size = os.lstat(path).st_size
                except OSError:  # removed meanwhile by another process: not ours to count
                    continue
                try:
                    os.unlink(path)
                except FileNotFoundError:  # removed meanwhile: gone all the same
                    pass
                except OSError:  # read-only: it stays
                    left += size
                    continue
                freed += size
    if live:
        names = ", ".join(p.relative_to(folder).as_posix() for p, _ in live[:5])
        also = f" and {len(live) - 5} more" if len(live) > 5 else ""
        warn(f"the cache folder {folder} holds {len(live)} temporary file(s) of a build still running "
             f"({sum(n for _, n in live) / 1e6:.1f} MB so far), kept: {names}{also}. That build writes its entry when "
             "it ends; clear the cache again then to remove it")
    if busy:
        names = ", ".join(p.relative_to(folder).as_posix() for p in busy[:5])
        also = f" and {len(busy) - 5} more" if len(busy) > 5 else ""
        warn(f"the cache folder {folder}: {len(busy)} entry folder(s) kept whole, a build held them locked for more "
             f"than {LOCK_WAIT_S:g} s while writing into them: {names}{also}. Clear the cache again when no build "
             "is running")
    for path in [*entries, *([folder] if link_target(folder) is None else [])]:
        with contextlib.suppress(OSError):  # not empty: it holds something kept, or a file that could not be removed
            os.rmdir(path)
    if others:
        shown = [f"{p.relative_to(folder).as_posix()}{'/' if p.is_dir() and link_target(p) is None else ''}"
                 for p in others[:5]]
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        warn(f"the cache folder {folder} holds {len(others)} item(s) pipekit did not write, kept: "
             f"{', '.join(shown)}{more}. pipekit deletes only its own entries there; if PIPEKIT_CACHE (or cache_dir) "
             "is also a folder of your own files, give pipekit a folder of its own")
    return freed, left


# ---------------------------------------------------------------------------------------- temporary files
def temp_name(stem: str, pid: int | None = None) -> str:
    """``<stem>.<pid>.<host>.<token>.pk-tmp``: the writer's process and machine, so a later build can tell a
    file that a live process is writing from one a killed build left behind."""
    pid = os.getpid() if pid is None else pid
    return f"{stem}.{pid}.{_HOST}.{os.urandom(4).hex()}{TEMP_SUFFIX}"


def _pid_alive(pid: int) -> bool:
    if pid <= 0 or os.name == "nt":  # on Windows os.kill(pid, 0) would terminate the process: rely on age
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, owned by someone else
        return True
    return True


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` is a temporary file no live writer will finish (see :func:`clean_stale_temps`)."""
    m = _TEMP_RE.match(path.name)
    if m is None:
        return False
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age > STALE_AFTER_S or (m["host"] == _HOST and not _pid_alive(int(m["pid"])))


def clean_stale_temps(root: Path) -> list[Path]:
    """Remove the temporary files in ``root`` and its sub-folders that no live build will finish.

    A temporary file is stale when the process named in it is gone on this machine (a killed build), or
    when nobody has written to it for ``STALE_AFTER_S`` seconds (6 hours): the writer on another machine
    sharing the folder, or a pid reused by an unrelated process. A build writes its temporary file
    continuously until it renames it, so a file a live process is writing is never removed. (Machines are
    told apart by host name: containers sharing a cache folder need distinct host names or one pid
    namespace.) A link among the sub-folders is not followed (:func:`link_target`).

    An entry folder (:data:`CACHE_LAYOUTS`) left empty, as an interrupted build leaves it, is removed too once
    unchanged for ``EMPTY_AFTER_S`` seconds (1 minute, its age read before its stale files were removed): a build
    makes its folder, then its temporary file in it, within that time. The removal is ``os.rmdir``, which fails on a
    folder a build has written into meanwhile, and a build makes its temporary file through :class:`TempFile`, which
    makes the folder again when it was removed between the two: a folder removed under a live build does not fail
    it. Returns the files removed.
    """
    removed: list[Path] = []
    now = time.time()
    # One scandir per folder, file types read from the listing (no stat per entry): 40 ms for 1,000 entries here,
    # as long as the glob it replaced took, nearly all of it opening the folders
    try:  # the entry folders: a link among them is not followed, so no file outside the cache is removed
        with os.scandir(root) as listing:
            folders = [root, *(Path(e.path) for e in listing if link_target(e) is None and e.is_dir())]
    except OSError:  # no cache folder yet
        return removed
    layout = CACHE_LAYOUTS.get(root.name)
    idle = []  # pipekit's entry folders unchanged for EMPTY_AFTER_S: removed below if empty
    for folder in folders[1:]:
        if layout is not None and layout[0].fullmatch(folder.name):
            with contextlib.suppress(OSError):  # removed meanwhile
                if now - os.lstat(folder).st_mtime > EMPTY_AFTER_S:
                    idle.append(folder)
    temps = []
    for folder in folders:
        with contextlib.suppress(OSError), os.scandir(folder) as listing:  # removed meanwhile by a clearing
            temps += [Path(e.path) for e in listing if e.name.endswith(TEMP_SUFFIX)]
    for f in temps:
        if is_stale_temp(f, now):
            try:
                f.unlink(missing_ok=True)
            except OSError:  # a read-only cache: its complete entries are still read, the leftover stays
                continue
            removed.append(f)
    for folder in idle:
        with contextlib.suppress(OSError):  # not empty (a complete entry, or a build writing in it), or read-only
            os.rmdir(folder)  # never follows a link: one put in the folder's place meanwhile is refused (ENOTDIR)
    return removed


class TempFile:
    """A new temporary file beside its destination, named by :func:`temp_name` (so :func:`clean_stale_temps` can tell
    whose it is); ``commit(dest)`` renames it into place atomically, leaving the context without committing removes it.

    The file is created when the TempFile is made, by :func:`pipekit.core.archive.new_temp_file`
    (``O_CREAT|O_EXCL|O_NOFOLLOW``): a link or file already at its name is never opened, another name is tried. Write
    it through ``fd`` (``os.pwrite``) or :meth:`open`, never by opening ``path`` again, which would follow whatever
    another process put at that name meanwhile. Making it raises the OSError of a folder that cannot be written.

    >>> import tempfile
    >>> scratch = tempfile.TemporaryDirectory()
    >>> folder = Path(scratch.name)
    >>> with TempFile(folder, "x") as tmp:
    ...     with tmp.open() as f:
    ...         _ = f.write(b"1")
    ...     tmp.commit(folder / "x.bin")
    >>> sorted(p.name for p in folder.iterdir())
    ['x.bin']
    >>> scratch.cleanup()
    """

    def __init__(self, folder: Path, stem: str):
        self.committed = False
        for attempt in range(3):
            folder.mkdir(parents=True, exist_ok=True)
            try:
                self.fd, self.path = new_temp_file(folder, lambda: temp_name(stem))
                break
            except FileNotFoundError:  # the empty folder was removed meanwhile (clean_stale_temps): made again
                if attempt == 2:
                    raise

    def open(self) -> IO[bytes]:
        """The file, open for writing (binary) through :attr:`fd`; closing it leaves :attr:`fd` open."""
        return open(self.fd, "wb", closefd=False)

    def _close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def commit(self, dest: Path) -> None:
        # No fsync: pages reach the disk in the background, and readers see them through the page cache.
        self._close()
        try:
            os.replace(self.path, dest)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path} was removed before it could become {dest.name}: another "
                                    "process took it for a killed build's; build again") from None
        self.committed = True

    def discard(self) -> None:
        self._close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.discard()


def atomic_write(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` through a temporary file (:func:`pipekit.core.archive.atomic_write_bytes`, named by
    :func:`temp_name` so :func:`clean_stale_temps` can tell whose it is): readers see the old file or the new one,
    and no link in the folder is written through."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, data, name=lambda: temp_name(dest.name))


# ---------------------------------------------------------------------------------------- self-checking JSON
def atomic_write_json(dest: Path, obj: Any) -> None:
    """Write ``obj`` as JSON holding the SHA-256 checksum of its own text, atomically."""
    body = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    atomic_write(dest, _JSON_HEAD + _digest(body).hex().encode() + _JSON_MID + body + _JSON_TAIL)


def check_fields(obj: Any, fields: dict[str, type | tuple[type, ...]], where: str) -> None:
    """Raise CacheEntryError naming ``where`` and the field when ``obj`` lacks a field or has a wrong type."""
    if not isinstance(obj, dict):
        raise CacheEntryError(f"{where} holds a {type(obj).__name__}, not a JSON object")
    for name, kind in fields.items():
        if name not in obj:
            raise CacheEntryError(f"{where} lacks the field {name!r}")
        value, kinds = obj[name], kind if isinstance(kind, tuple) else (kind,)
        # JSON true/false are not numbers here, although Python's bool is an int
        if not isinstance(value, kinds) or (isinstance(value, bool) and int in kinds and bool not in kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            raise CacheEntryError(f"{where}: field {name!r} is a {type(value).__name__}, expected {expected}")


def read_json(path: Path, fields: dict[str, type | tuple[type, ...]] | None = None) -> Any:
    """The object :func:`atomic_write_json` wrote to ``path``, checked: the file exists, parses, has
    ``fields`` with their types, and its text matches its checksum. Raises CacheEntryError otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CacheEntryError(f"{path.name} is missing") from None
    except OSError as e:
        raise CacheEntryError(f"{path.name} cannot be read ({e.strerror or e})") from None
    try:
        outer = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CacheEntryError(f"{path.name} is not valid JSON (cut off or overwritten)") from None
    except RecursionError:  # pipekit's meta files nest a few levels; thousands are a crafted file
        raise CacheEntryError(f"{path.name} nests its JSON too deeply to be read (pipekit never writes it so)") from None
    check_fields(outer, {"sha256": str, "data": object}, path.name)
    obj = outer["data"]
    older = _made_by_older(obj) if fields else None
    if older:  # an older format lacks fields this version reads: not a damaged file
        raise CacheEntryError(older)
    if fields:
        check_fields(obj, fields, path.name)
    start = len(_JSON_HEAD) + 2 * _DIGEST + len(_JSON_MID)
    body = raw[start:-len(_JSON_TAIL)]
    if not (raw.startswith(_JSON_HEAD) and raw[start - len(_JSON_MID):start] == _JSON_MID
            and raw.endswith(_JSON_TAIL) and _digest(body).hex() == outer["sha256"]):
        raise CacheEntryError(f"{path.name}: its text does not match the checksum written with it "
                              "(it was changed after pipekit wrote it)")
    return obj


# ---------------------------------------------------------------------------------------- the cache key
_KEYS: dict[str, bytes] = {}
_KEY_LOCK = threading.Lock()
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def cache_key_file() -> Path | None:
    """The file of this user's cache key: ``$PIPEKIT_CACHE_KEY_FILE``, else ``pipekit/cache.key`` in
    ``$XDG_CONFIG_HOME`` (default ``~/.config``), never inside a cache folder; None when there is no home folder.

    ``~`` is expanded; a relative path, or a ``~user`` that names no user, is refused with a ParameterError (as
    ``PIPEKIT_CACHE`` is): the key, and with it every cache entry, would change with the working folder."""
    named = os.environ.get(KEY_FILE_ENV, "")
    if named:
        path = Path(os.path.expanduser(named))  # a ~user naming no user is left as it is (Path.expanduser raises)
        if not path.is_absolute():
            why = (f"starts with {named.split('/', 1)[0]!r}, the home folder of no user of this machine"
                   if named.startswith("~") else
                   "is a relative path, so the key, and every cache entry signed with it, would change with the "
                   "working folder")
            raise ParameterError(f"{KEY_FILE_ENV}={named!r} {why}: set it to an absolute path (for example "
                                 f"{KEY_FILE_ENV}=~/.config/pipekit/cache.key), or unset it for "
                                 "$XDG_CONFIG_HOME/pipekit/cache.key")
        return path
    config = os.environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(config):  # unset, empty or relative: the XDG rule is to use the default then
        home = Path(os.path.expanduser("~"))
        if not home.is_absolute():
            return None
        config = os.fspath(home / ".config")
    return Path(config) / "pipekit" / "cache.key"


class _UntrustedKey(Exception):
    """The key file exists but is not used; the message says why."""


def _read_key(path: Path) -> bytes:
    """The key in ``path``: FileNotFoundError (or NotADirectoryError) when there is none, _UntrustedKey when it
    cannot be trusted."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)  # no link followed, no FIFO waited on
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):  # what O_NOFOLLOW gives for a link (Linux, macOS; BSD)
            raise _UntrustedKey("is a symbolic link") from None
        raise _UntrustedKey(f"cannot be read ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _UntrustedKey("is not a regular file")
        if os.name != "nt":  # Windows keeps no owner and mode bits to check this way
            if st.st_uid != os.geteuid():
                raise _UntrustedKey(f"belongs to another user (uid {st.st_uid})")
            if st.st_mode & 0o077:
                raise _UntrustedKey(f"can be read or written by other users (its mode is {stat.S_IMODE(st.st_mode):o})")
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise _UntrustedKey(f"holds {len(key)} bytes, not a key of {KEY_BYTES}")
    return key


def _new_key(path: Path) -> bytes:
    """Make ``path`` hold a new random key and return it, or the key another process made there first.

    The key goes to a temporary file created with O_EXCL and mode 0600, then is linked into place: a link never
    replaces a file, and no reader sees a key half written, so processes started together on a fresh machine (the
    ranks of a distributed run) agree on one key.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    tmp = path.with_name(temp_name(path.name))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        try:
            if os.write(fd, key) != KEY_BYTES:
                raise OSError(errno.ENOSPC, "short write; is the disk full?", os.fspath(tmp))
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_key(path)
    finally:
        tmp.unlink(missing_ok=True)
    return key


def _load_key(path: Path | None) -> bytes:
    fix = f"set {KEY_FILE_ENV}=<a file in a folder only you can write>"
    if path is None:
        problem = "there is no home folder to keep the cache key in"
    else:
        try:
            try:
                return _read_key(path)
            except (FileNotFoundError, NotADirectoryError):  # none yet (making it says what is in the way)
                return _new_key(path)
        except _UntrustedKey as e:
            problem = f"the cache key file {path} {e}, so it is not used"
            fix = f"remove it (pipekit then makes a new one, readable by you only) or {fix}"
        except OSError as e:
            where = f": {e.filename}" if e.filename else ""
            problem = f"the cache key file {path} cannot be made ({e.strerror or e}{where})"
            fix = f"make {path.parent} writable or {fix}"
    warn(f"{problem}: cache entries are signed with a key for this process only, which serves this run; the next "
         f"run builds them again. To keep them, {fix}", CacheWriteWarning)
    return os.urandom(KEY_BYTES)


def cache_signing_key() -> bytes:
    """This user's secret key for signing cache entries (see the module docstring), from :func:`cache_key_file`,
    made there on first use; read once per process and file.

    A key file that cannot be trusted (a link, not a regular file, another user's, readable or writable by others,
    not :data:`KEY_BYTES` bytes) or made (its folder cannot be written) is said once, by a CacheWriteWarning naming it
    and the fix; a random key for this process only is used instead, so what this run writes is rebuilt by the next.
    """
    path = cache_key_file()
    name = os.fspath(path) if path is not None else ""
    with _KEY_LOCK:
        key = _KEYS.get(name)
        if key is None:
            key = _KEYS[name] = _load_key(path)
    return key


# ---------------------------------------------------------------------------------------- pack checksums
def _combine(header_len: int, record_len: int, size: int, head: bytes, records: bytes | bytearray) -> str:
    h = hashlib.sha256()
    h.update(f"{CHECKSUM_ALGO}|{header_len}|{record_len}|{size}|".encode())
    h.update(head)
    h.update(records)
    return h.hexdigest()


def sign_fields(path: Path, fields: list[Any], key: bytes | None = None) -> str:
    """HMAC-SHA256, under this user's cache key (:func:`cache_signing_key`), of where an entry is (``path``'s folder
    and file name) and ``fields`` as JSON reads them back: the one signature of pipekit's caches. A pack's checksum
    record is signed so (:func:`verify_pack`), and so is any other record pipekit must later prove it wrote, such as
    the list of a downloaded data set's files (:mod:`pipekit.data.external`). ``fields`` starts with the kind of
    record (a pack's :data:`CHECKSUM_ALGO`, another record's own name and version), so that one kind's signature
    never passes for another's.

    >>> key, fields = bytes(KEY_BYTES), ["kind-1", {"n": 3}]
    >>> sign_fields(Path("data/x.json"), fields, key) == sign_fields(Path("data/y.json"), fields, key)
    False
    """
    body = json.dumps([f"{path.parent.name}/{path.name}", *fields], sort_keys=True, separators=(",", ":"),
                      allow_nan=False)
    return hmac.new(key if key is not None else cache_signing_key(), body.encode(), hashlib.sha256).hexdigest()


def _signature(path: Path, record: dict[str, Any], meta: Any, key: bytes | None = None) -> str:
    """:func:`sign_fields` of where the pack is, its checksum ``record`` (whose digest covers every byte of the pack)
    and ``meta``, the rest of the meta file holding the record as JSON reads it back. One HMAC over the digests: the
    per-record hashing of the pack stays unkeyed."""
    return sign_fields(path, [record["algo"], record["size"], record["header_len"], record["record_len"],
                              record["digest"], meta], key)


def _record(header_len: int, record_len: int, size: int, digest: str, dest: Path, meta: Any) -> dict[str, Any]:
    record = {"algo": CHECKSUM_ALGO, "size": size, "header_len": header_len, "record_len": record_len,
              "digest": digest}
    # signed as it will be read back: JSON makes tuples lists and the keys of a mapping strings
    record["signature"] = _signature(dest, record, json.loads(json.dumps(meta, allow_nan=False)))
    return record


def _signed_again(checksum: dict[str, Any], dest: Path, meta: Any) -> dict[str, Any]:
    """The checksum record ``checksum`` of the pack ``dest`` signed anew together with ``meta``, the other fields of its
    meta file as they now are (a pack whose files were moved records their new paths), for the same bytes of the pack.

    For pipekit's cache modules only (the image cache's :func:`pipekit.vision.cache._record_sources`), and only with a
    record this process has just checked against ``dest`` (:func:`verify_pack`, :func:`open_verified`), never one read
    again since, which whoever can write the cache folder may have replaced: signing a record that was not checked
    would vouch for bytes this user's pipekit never wrote. Not exported; nothing outside the cache modules signs."""
    return _record(checksum["header_len"], checksum["record_len"], checksum["size"], checksum["digest"], dest, meta)


class PackChecksum:
    """The checksum of a pack laid out as a header and ``n_records`` records of ``record_len`` bytes, fed
    while the records are written, in any order and from several threads (each record once).

    Hashing a record right after writing it, from the same buffer, costs no second pass over the data; the
    per-record digests also let :func:`verify_pack` check a pack with several threads.
    """

    def __init__(self, header: bytes, record_len: int, n_records: int):
        if record_len < 1 or n_records < 0:
            raise ValueError(f"record_len={record_len} must be >= 1 and n_records={n_records} >= 0")
        self.header_len, self.record_len, self.n_records = len(header), int(record_len), int(n_records)
        self._head = _digest(header)
        self._records = bytearray(_DIGEST * n_records)
        self._seen = np.zeros(n_records, dtype=bool)

    def add(self, i: int, data: Any) -> None:
        """Record ``i``'s bytes (thread-safe: each thread writes its own slots)."""
        n = memoryview(data).nbytes
        if n != self.record_len:
            raise ValueError(f"record {i} is {n} bytes, the pack's records are {self.record_len}")
        self._records[_DIGEST * i:_DIGEST * (i + 1)] = _digest(data)
        self._seen[i] = True

    def result(self, dest: Path, meta: Any) -> dict[str, Any]:
        """The checksum record to store in the meta file of the pack committed as ``dest``, signed together with
        ``meta``, the other fields of that meta file (see :func:`verify_pack`)."""
        if not self._seen.all():
            raise RuntimeError(f"{int((~self._seen).sum())} of {self.n_records} records were never hashed")
        size = self.header_len + self.n_records * self.record_len
        return _record(self.header_len, self.record_len, size,
                       _combine(self.header_len, self.record_len, size, self._head, self._records), dest, meta)


class ChecksumWriter:
    """A binary file to write a pack through (e.g. by ``pyarrow.PythonFile``): it passes the bytes on to
    ``raw`` and hashes them in records of ``STREAM_RECORD`` bytes as they go, keeping none of them."""

    def __init__(self, raw: Any, record_len: int = STREAM_RECORD):
        self._raw, self.record_len = raw, int(record_len)
        self._records, self._cur = bytearray(), hashlib.sha256()
        self._cur_len, self.size, self.closed = 0, 0, False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        pos = 0
        while pos < n:
            written = self._raw.write(view[pos:])
            pos += n - pos if written is None else written
        pos = 0
        while pos < n:
            take = min(n - pos, self.record_len - self._cur_len)
            self._cur.update(view[pos:pos + take])
            self._cur_len += take
            pos += take
            if self._cur_len == self.record_len:
                self._records += self._cur.digest()
                self._cur, self._cur_len = hashlib.sha256(), 0
        self.size += n
        return n

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        self.closed = True

    def checksum(self, dest: Path, meta: Any) -> dict[str, Any]:
        """The checksum record of everything written so far, for the pack committed as ``dest``, signed together
        with ``meta``, the other fields of the meta file that stores it (see :func:`verify_pack`)."""
        records = self._records + (self._cur.digest() if self._cur_len else b"")
        return _record(0, self.record_len, self.size, _combine(0, self.record_len, self.size, _digest(b""), records),
                       dest, meta)


_CHECKSUM_FIELDS: dict[str, type | tuple[type, ...]] = {
    "algo": str, "size": int, "header_len": int, "record_len": int, "digest": str, "signature": str}


def verify_pack(path: Path, checksum: Any, *, header_len: int, record_len: int, meta: Any,
                workers: int | None = None, file: IO[bytes] | None = None) -> str | None:
    """None when ``path`` holds exactly the bytes ``checksum`` (from :class:`PackChecksum` or
    :class:`ChecksumWriter`) was computed over and this user's pipekit signed it for ``path`` with ``meta`` (the
    other fields of the meta file, as read), else what is wrong (missing, not a regular file, wrong size, changed
    bytes, not signed by this user's cache key).

    ``file``: ``path`` already opened for reading, verified through that open file rather than opened again by
    name (see :func:`open_verified`, which maps what it verified).

    ``header_len`` and ``record_len`` are the layout the caller expects of the pack (from what it knows of it, never
    from the record): a record giving another layout is refused before any byte is read, as a record size of one
    byte would hash the pack byte by byte (hundreds of times slower, 32 bytes of memory per byte of pack). Reads the
    pack once, hashing its records in ``workers`` threads (hashlib releases the GIL).
    """
    algo = checksum.get("algo") if isinstance(checksum, dict) else None
    older = _made_by_older({"checksum": checksum}) if isinstance(algo, str) else None
    if older:
        return older
    if isinstance(algo, str) and algo != CHECKSUM_ALGO:
        return f"its checksum is of kind {algo!r}, this version of pipekit trusts only signed {CHECKSUM_ALGO!r}"
    try:
        check_fields(checksum, _CHECKSUM_FIELDS, "the checksum record")
    except CacheEntryError as e:
        return f"its meta has a malformed checksum ({e.reason})"
    size = checksum["size"]
    if (checksum["header_len"], checksum["record_len"]) != (header_len, record_len):
        return (f"its meta gives a header of {checksum['header_len']} bytes and records of {checksum['record_len']}, "
                f"where this pack has a header of {header_len} bytes and records of {record_len} (the meta was "
                "changed after pipekit wrote it)")
    if record_len < 1 or not 0 <= header_len <= size:
        return f"its meta has an impossible layout (header {header_len}, records {record_len}, size {size})"
    key = cache_signing_key()  # outside the try: a bad key setting is the user's to fix, not a forged entry
    try:
        signature = _signature(path, checksum, meta, key)
    except (ValueError, RecursionError):  # NaN or nesting that JSON reads but pipekit never writes
        signature = ""
    if not hmac.compare_digest(checksum["signature"].encode(), signature.encode()):
        return "it was not written by this user's pipekit (its signature does not match this user's cache key)"
    try:
        fd = file.fileno() if file is not None else os.open(path, os.O_RDONLY | _NONBLOCK)  # no FIFO waited on
    except FileNotFoundError:
        return "the file is missing"
    except OSError as e:
        return f"the file cannot be read ({e.strerror or e})"
    try:
        return _verify_fd(fd, checksum, header_len, record_len, size, workers)
    finally:
        if file is None:
            os.close(fd)


def _verify_fd(fd: int, checksum: dict[str, Any], header_len: int, record_len: int, size: int,
               workers: int | None) -> str | None:
    """:func:`verify_pack`'s reading and hashing, through the open file ``fd``."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_size != size:
        return f"the file is {st.st_size} bytes but {size} were written (cut short or overwritten)"
    n = -(-(size - header_len) // record_len)
    records = bytearray(_DIGEST * n)
    per_task = max(1, _TASK_BYTES // record_len)
    short: list[int] = []

    def run(lo: int) -> None:
        start = header_len + lo * record_len
        length = min(size, start + per_task * record_len) - start
        buf = os.pread(fd, length, start)
        if len(buf) != length:
            short.append(lo)
            return
        view = memoryview(buf)
        for j, off in enumerate(range(0, length, record_len)):
            records[_DIGEST * (lo + j):_DIGEST * (lo + j + 1)] = _digest(view[off:off + record_len])

    head = os.pread(fd, header_len, 0)
    starts = range(0, n, per_task)
    workers = min(workers or max(1, min(8, os.cpu_count() or 1)), len(starts))
    if workers <= 1:
        for lo in starts:
            run(lo)
    else:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(run, starts))
    if short or len(head) != header_len:
        return "the file became shorter while it was read"
    if _combine(header_len, record_len, size, _digest(head), records) != checksum["digest"]:
        return "its bytes do not match the checksum written with it (the file changed after it was written)"
    return None


def open_verified(path: Path, checksum: Any, *, header_len: int, record_len: int, meta: Any) -> IO[bytes]:
    """``path`` opened for reading once and checked through that open file by :func:`verify_pack`; raises
    CacheEntryError saying what is wrong. Map the file returned (``np.memmap(f, ...)``, ``mmap.mmap(f.fileno(),
    ...)``), then close it: what is mapped is what was verified, even if another file is renamed into ``path``
    meanwhile, as whoever can write the cache folder can do (verifying by name and mapping by name again would map
    that file, unverified)."""
    try:  # a link in the entry's place is not followed: removed, and the entry rebuilt
        f = open(os.open(path, os.O_RDONLY | _NONBLOCK | _NOFOLLOW), "rb")  # returned open: the caller maps it
    except FileNotFoundError:
        raise CacheEntryError("the file is missing") from None
    except OSError as e:
        if link_target(path) is not None:
            with contextlib.suppress(OSError):  # (one that cannot be removed is named by the rebuild's write)
                remove_link(path)
            raise CacheEntryError("the file is a link, which pipekit does not follow in a cache") from None
        raise CacheEntryError(f"the file cannot be read ({e.strerror or e})") from None
    try:
        reason = verify_pack(path, checksum, header_len=header_len, record_len=record_len, meta=meta, file=f)
    except BaseException:
        f.close()
        raise
    if reason is not None:
        f.close()
        raise CacheEntryError(reason)
    return f

