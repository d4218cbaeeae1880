"""What pipekit's on-disk caches share: keys, checksummed packs, atomic writes and stale-file cleanup.

The presized-image cache (:mod:`pipekit.vision.cache`) and the token-id cache (:mod:`pipekit.text.store`)
each keep their own layout; both use this module so that a cache trusts only bytes it can prove it wrote:

- :func:`fingerprint` keys an entry (blake2b over length-prefixed parts: file bytes, settings, buffers).
- :func:`cache_folder` says where a kind of cache lives (``$PIPEKIT_CACHE/<sub>`` or ``<folder>/<sub>``).
- A *pack* (one large memory-mapped file) gets a checksum computed while it is written, by
  :class:`PackChecksum` (records written out of order from threads) or :class:`ChecksumWriter` (a
  stream); :func:`verify_pack` checks it once when the pack is opened, never per batch.
- Meta files are self-checking JSON (:func:`atomic_write_json`, :func:`read_json`): a missing field, a
  wrong type, a cut-off or edited file is reported with the file and the field.
- Every file is written to a temporary name and renamed into place (:class:`TempFile`), so a reader never
  sees half a file; :func:`clean_stale_temps` removes what a killed build left (the rule is documented there).
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
    ...     with open(tmp.path, "wb") as raw:
    ...         sink = ChecksumWriter(raw)
    ...         _ = sink.write(b"some bytes")
    ...     tmp.commit(folder / "pack.bin")
    >>> verify_pack(folder / "pack.bin", sink.checksum()) is None
    True
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pipekit.core.errors import warn
from pipekit.data.external import pipekit_cache_dir

#: The checksum scheme of packs: SHA-256 of each record, then SHA-256 of the layout and those digests.
#: SHA-256 rather than blake2b: CPUs with SHA instructions hash it ~2.7x faster (1.1 GB/s against 0.42 GB/s
#: per core measured here), and verifying is most of a warm cache open.
CHECKSUM_ALGO = "sha256-records-1"
#: Record size when a pack is written as one stream (the token-id cache); also the unit of parallel verifying.
STREAM_RECORD = 1 << 20
#: A temporary file untouched for this long is stale whoever wrote it (see :func:`clean_stale_temps`).
STALE_AFTER_S = 6 * 3600
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


class CacheRebuildWarning(UserWarning):
    """A cache file could not be trusted and is being rebuilt from the source data."""


def warn_rebuild(path: str | os.PathLike, reason: str) -> None:
    """Warn that the cache file ``path`` failed its checks because of ``reason`` and is rebuilt."""
    warn(f"cache file {path}: {reason}; rebuilding it from the source data", CacheRebuildWarning)


class CacheWriteWarning(UserWarning):
    """A cache folder could not be written; the data is kept in memory for this run and built again next run."""


_UNWRITABLE_SAID: set[str] = set()


def warn_unwritable(folder: str | os.PathLike, error: OSError, what: str, turn_off: str) -> None:
    """Warn, once per ``folder`` and process, that the cache ``folder`` cannot be written (``error``): the caller
    goes on with ``what`` in memory. The message says both ways out: a writable ``PIPEKIT_CACHE`` (or cache
    folder), or ``turn_off``, the argument that keeps the cache off disk."""
    key = os.fspath(folder)
    if key in _UNWRITABLE_SAID:
        return
    _UNWRITABLE_SAID.add(key)
    now = os.environ.get("PIPEKIT_CACHE")
    warn(f"the cache folder {key} cannot be written ({error.strerror or error}): going on with the {what} in "
         f"memory, so this run works but the next one builds them again. Set PIPEKIT_CACHE=<a writable folder>"
         f"{f' (it is {now})' if now else ''} or give cache_dir=<a writable folder> to keep them, or give "
         f"{turn_off} not to write a cache", CacheWriteWarning)


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


#: The kinds of on-disk cache (the names ``clear_cache`` and ``pipekit cache`` take) and their sub-folders of
#: ``$PIPEKIT_CACHE``: presized images (:mod:`pipekit.vision.cache`) and token ids (:mod:`pipekit.text.store`).
CACHE_KINDS = {"images": "images", "tokens": "text"}


def cache_usage(folder: Path | None) -> tuple[int, int]:
    """``(bytes, entries)`` of the cache ``folder``: the size of the files under it and the number of entries (its
    sub-folders); ``(0, 0)`` when it does not exist."""
    if folder is None or not folder.is_dir():
        return 0, 0
    size, entries = 0, 0
    for dirpath, dirnames, filenames in os.walk(folder):
        if Path(dirpath) == folder:
            entries = len(dirnames)
        for name in filenames:
            with contextlib.suppress(OSError):  # removed meanwhile by another process
                size += os.lstat(os.path.join(dirpath, name)).st_size
    return size, entries


def remove_cache_folder(folder: Path | None) -> int:
    """Delete the cache ``folder`` and everything in it; returns the bytes freed (what could not be removed, in a
    read-only folder, stays and is not counted)."""
    before = cache_usage(folder)[0]
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    return before - cache_usage(folder)[0]


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
    namespace.) Returns the files removed.
    """
    removed = []
    now = time.time()
    for f in (*root.glob(f"*{TEMP_SUFFIX}"), *root.glob(f"*/*{TEMP_SUFFIX}")):
        if is_stale_temp(f, now):
            try:
                f.unlink(missing_ok=True)
            except OSError:  # a read-only cache: its complete entries are still read, the leftover stays
                continue
            removed.append(f)
    return removed


class TempFile:
    """A temporary file beside its destination; ``commit(dest)`` renames it into place atomically, leaving
    the context without committing removes it.

    >>> import tempfile
    >>> scratch = tempfile.TemporaryDirectory()
    >>> folder = Path(scratch.name)
    >>> with TempFile(folder, "x") as tmp:
    ...     _ = tmp.path.write_bytes(b"1")
    ...     tmp.commit(folder / "x.bin")
    >>> sorted(p.name for p in folder.iterdir())
    ['x.bin']
    """

    def __init__(self, folder: Path, stem: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.path, self.committed = folder / temp_name(stem), False

    def commit(self, dest: Path) -> None:
        # No fsync: pages reach the disk in the background, and readers see them through the page cache.
        try:
            os.replace(self.path, dest)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path} was removed before it could become {dest.name}: another "
                                    "process took it for a killed build's; build again") from None
        self.committed = True

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.discard()


def atomic_write(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` through a temporary file: readers see the old file or the new one."""
    with TempFile(dest.parent, dest.name) as tmp:
        tmp.path.write_bytes(data)
        tmp.commit(dest)


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
    check_fields(outer, {"sha256": str, "data": object}, path.name)
    obj = outer["data"]
    if fields:
        check_fields(obj, fields, path.name)
    start = len(_JSON_HEAD) + 2 * _DIGEST + len(_JSON_MID)
    body = raw[start:-len(_JSON_TAIL)]
    if not (raw.startswith(_JSON_HEAD) and raw[start - len(_JSON_MID):start] == _JSON_MID
            and raw.endswith(_JSON_TAIL) and _digest(body).hex() == outer["sha256"]):
        raise CacheEntryError(f"{path.name}: its text does not match the checksum written with it "
                              "(it was changed after pipekit wrote it)")
    return obj


# ---------------------------------------------------------------------------------------- pack checksums
def _combine(header_len: int, record_len: int, size: int, head: bytes, records: bytes | bytearray) -> str:
    h = hashlib.sha256()
    h.update(f"{CHECKSUM_ALGO}|{header_len}|{record_len}|{size}|".encode())
    h.update(head)
    h.update(records)
    return h.hexdigest()


def _record(header_len: int, record_len: int, size: int, digest: str) -> dict[str, Any]:
    return {"algo": CHECKSUM_ALGO, "size": size, "header_len": header_len, "record_len": record_len,
            "digest": digest}


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

    def result(self) -> dict[str, Any]:
        """The checksum record to store in the pack's meta file."""
        if not self._seen.all():
            raise RuntimeError(f"{int((~self._seen).sum())} of {self.n_records} records were never hashed")
        size = self.header_len + self.n_records * self.record_len
        return _record(self.header_len, self.record_len, size,
                       _combine(self.header_len, self.record_len, size, self._head, self._records))


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

    def checksum(self) -> dict[str, Any]:
        """The checksum record of everything written so far."""
        records = self._records + (self._cur.digest() if self._cur_len else b"")
        return _record(0, self.record_len, self.size, _combine(0, self.record_len, self.size, _digest(b""), records))


_CHECKSUM_FIELDS: dict[str, type | tuple[type, ...]] = {
    "algo": str, "size": int, "header_len": int, "record_len": int, "digest": str}


def verify_pack(path: Path, checksum: Any, workers: int | None = None) -> str | None:
    """None when ``path`` holds exactly the bytes ``checksum`` (from :class:`PackChecksum` or
    :class:`ChecksumWriter`) was computed over, else what is wrong (missing, wrong size, changed bytes).

    Reads the pack once, hashing its records in ``workers`` threads (hashlib releases the GIL).
    """
    try:
        check_fields(checksum, _CHECKSUM_FIELDS, "the checksum record")
    except CacheEntryError as e:
        return f"its meta has a malformed checksum ({e.reason})"
    if checksum["algo"] != CHECKSUM_ALGO:
        return f"its checksum is of kind {checksum['algo']!r}, this version of pipekit writes {CHECKSUM_ALGO!r}"
    size, header_len, record_len = checksum["size"], checksum["header_len"], checksum["record_len"]
    if record_len < 1 or not 0 <= header_len <= size:
        return f"its meta has an impossible layout (header {header_len}, records {record_len}, size {size})"
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        return "the file is missing"
    if actual != size:
        return f"the file is {actual} bytes but {size} were written (cut short or overwritten)"
    n = -(-(size - header_len) // record_len)
    records = bytearray(_DIGEST * n)
    per_task = max(1, _TASK_BYTES // record_len)
    short: list[int] = []
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return f"the file cannot be read ({e.strerror or e})"

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

    try:
        head = os.pread(fd, header_len, 0)
        starts = range(0, n, per_task)
        workers = min(workers or max(1, min(8, os.cpu_count() or 1)), len(starts))
        if workers <= 1:
            for lo in starts:
                run(lo)
        else:
            with ThreadPoolExecutor(workers) as ex:
                list(ex.map(run, starts))
    finally:
        os.close(fd)
    if short or len(head) != header_len:
        return "the file became shorter while it was read"
    if _combine(header_len, record_len, size, _digest(head), records) != checksum["digest"]:
        return "its bytes do not match the checksum written with it (the file changed after it was written)"
    return None

