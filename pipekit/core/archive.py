"""Reading files someone else may have written: zip archives (learner exports, ``.npz`` model files),
folders holding the same files, JSON and NumPy arrays, with every size bounded before anything is read.

A zip's central directory states each member's compressed and uncompressed size. Those are checked
against the caps below (per member kind, total, compression ratio) before a byte is inflated, and each
member is then read into a buffer of exactly the stated size, so a directory that lies cannot make
pipekit inflate past it (the CRC check at the end catches the lie). Names must be plain relative paths,
unique, unencrypted, stored or deflated. JSON is capped in size and nesting; arrays are parsed from
their ``.npy`` header without pickle, numbers/booleans/strings only, and the header must agree with
the bytes that follow before anything is allocated. Every refusal is an :class:`ExportError` naming the
file and member.

Writing (``write_archive``): a zip is written as a temporary file beside it, then renamed over the target, so the
file there before stays whole until the new one is complete. The files pipekit saves, exports and caches (learner and
model exports, ``learn.save``, ``save_pickle``, ``Tabular.save``, the image and token caches' packs and meta files) are
written this way, to a temporary file made by :func:`new_temp_file`: it has a random name and is created new
(``O_CREAT|O_EXCL|O_NOFOLLOW``) and written through the descriptor that created it, so nothing already in the folder
(a link planted at a name pipekit might use) is ever written through, and the rename replaces a link at the target
rather than writing where it points. A file replaced keeps its permission bits (a 0600 file stays 0600). A path without an extension is a folder, written into
(never moved or replaced): a manifest.json it holds must be a pipekit export's, the previous export's files are
replaced one by one, manifest.json removed first and written last, so an interrupted export leaves a folder that
``load`` refuses rather than a mix of two exports; files pipekit does not write are never touched.

Example:
    >>> import io, zipfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as z:
    ...     z.writestr("recipe.json", '{"version": 1}')
    >>> files = read_archive(buf.getvalue(), {"recipe.json": MAX_JSON_BYTES}, where="example.zip")
    >>> parse_json(files["recipe.json"], where="example.zip: recipe.json")
    {'version': 1}
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Literal, Mapping, Union

import numpy as np

from pipekit.core.errors import ExportError, FieldError, PipekitError

__all__ = ["Archive", "ExportError", "FORMAT", "VERSION", "load", "read_pipekit", "save", "write_archive",
           "atomic_output", "atomic_write_bytes", "export_folder_kind", "is_export_folder", "new_temp_file",
           "unwritable_error", "why_unwritable", "writable_folder",
           "MAX_ARRAY_BYTES", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MAX_RATIO", "MAX_TOTAL_BYTES",
           "MAX_WEIGHTS_BYTES", "building_from", "check_array_references", "parse_json", "read_archive", "read_file",
           "read_folder", "read_npz"]


MiB = 1 << 20
GiB = 1 << 30

#: recipe.json and a model file's metadata. The largest JSON pipekit writes is a text learner's recipe
#: (vocabulary and tokenizer state): 54 KB for the imdb_sample classifier, and a 60k-token vocabulary adds
#: under 1 MB. Parsed JSON takes up to ~24x its size in Python objects (measured on a list of empty
#: objects), so 16 MiB bounds what a hostile recipe can allocate at ~400 MB.
MAX_JSON_BYTES = 16 * MiB
#: deepest JSON nesting accepted. pipekit's recipes and model metadata nest 9 levels (vision, text, tabular,
#: collab and ensemble files); the cap keeps everything that walks the state recursively far from Python's
#: recursion limit (json itself gives up near it, ~1000 levels, with a RecursionError).
MAX_JSON_DEPTH = 64
#: one array (``.npy`` member, or ``arrays.npz`` inside an export): forest node tables and LightGBM model
#: text for large tables reach hundreds of MB.
MAX_ARRAY_BYTES = 2 * GiB
#: ``model.safetensors``: the book's largest bodies (AWD-LSTM with a 60k vocabulary, ResNet-50) are
#: 100-200 MB; 4 GiB leaves room for much larger ones.
MAX_WEIGHTS_BYTES = 4 * GiB
#: everything read from one archive or folder together.
MAX_TOTAL_BYTES = 8 * GiB
#: uncompressed/compressed size. Deflate reaches ~1030:1 on a run of one byte (a zip bomb); what pipekit
#: writes is stored (ratio 1: weights and every array) or deflated JSON (2.7-4.7:1 on the book's recipes). Members under RATIO_FLOOR are not checked
#: (a short run of spaces legitimately compresses far better); their size cap bounds them.
MAX_RATIO = 100
RATIO_FLOOR = 1 * MiB
#: the bytes of arrays a record may refer to, counting each reference, over the bytes arrays.npz holds: pipekit
#: writes each array for one field (1x); an edited file may refer to some twice, never build a member many times
#: over the same arrays (see ``check_array_references``). Under REFERENCED_FLOOR of extra references is not checked.
MAX_REFERENCED_RATIO = 2
REFERENCED_FLOOR = 1 * MiB
#: the central directory is parsed whole by zipfile, so its size is checked first (pipekit writes 3
#: members per export and ~15 arrays per ensemble member).
MAX_MEMBERS = 10_000
MAX_DIRECTORY_BYTES = 4 * MiB
#: numpy's own default cap on a ``.npy`` header (``max_header_size``).
NPY_HEADER_BYTES = 10_000
_NPY_PREFIX = 12  # magic (6) + version (2) + header length (4 in format 2.0)
#: array element kinds accepted: bool, ints, unsigned, floats, complex, bytes, str. Never objects,
#: records or sub-arrays.
_NPY_KINDS = "biufcSU"
_CHUNK = 1 * MiB

Limits = Union[Mapping[str, int], Callable[[str], int]]


def _size(n: int) -> str:
    return f"{n:,} bytes"


# ------------------------------------------------------------------------------------------------- JSON
def parse_json(data: str | bytes | bytearray | memoryview, where: str, max_bytes: int = MAX_JSON_BYTES,
               max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse UTF-8 JSON of at most ``max_bytes``, nested at most ``max_depth`` deep; anything else is an
    :class:`ExportError` naming ``where`` (never a RecursionError or UnicodeDecodeError).

    >>> parse_json(b'{"a": [1, 2]}', where="recipe.json")
    {'a': [1, 2]}
    """
    n = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    if n > max_bytes:
        raise ExportError(f"{where} holds {_size(n)} of JSON, over the {_size(max_bytes)} limit")
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ExportError(f"{where} is not UTF-8 JSON ({e})") from None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ExportError(f"{where} nests JSON deeper than {max_depth} levels") from None
    except ValueError as e:  # JSONDecodeError, and ints longer than Python's digit limit
        raise ExportError(f"{where} is not valid JSON ({e})") from None
    depth = json_depth(obj, limit=max_depth)
    if depth > max_depth:
        raise ExportError(f"{where} nests JSON deeper than {max_depth} levels")
    return obj


def json_depth(obj: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of lists/dicts in ``obj`` (a scalar is 0), walked without recursion; stops counting
    once past ``limit``."""
    deepest = 0
    stack = [(obj, 1)]
    while stack:
        node, d = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def check_array_references(record: Any, arrays: Mapping[str, np.ndarray], where: str) -> None:
    """Refuse a record whose references to the arrays of ``arrays.npz`` add up to far more than the arrays stored.

    Each reference is rebuilt on its own (a forest's trees, a booster, a fold model), so a file listing one member
    thousands of times over the same stored arrays would make loading allocate thousands of times what the file
    holds. pipekit writes each array for the one field that holds it (``to_data`` gives every array a key of its own,
    and a model, processor or member held in two places is written twice), so the bytes referenced, counting every
    reference, are the bytes stored; a file may refer to at most ``MAX_REFERENCED_RATIO`` times them (plus
    ``REFERENCED_FLOOR``), checked before anything is built. The error names ``where``, the array referenced most
    and the first two fields that refer to it, e.g. ``params.members[0].state.classes_``.

    >>> a = {"a0": np.zeros(2**18)}
    >>> check_array_references({"params": {"m": [{"__array__": "a0"}] * 2}}, a, "m.pipekit")  # 2 MiB of 2: fine
    >>> check_array_references({"params": {"m": [{"__array__": "a0"}] * 4}}, a, "m.pipekit")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ExportError: m.pipekit: record.json refers to 8,388,608 bytes of arrays where arrays.npz holds 2,097,152 bytes (at most 2x, plus 1,048,576 bytes, is accepted): array 'a0' (2,097,152 bytes) is referenced 4 times, from params.m[0], params.m[1] and 2 more fields. pipekit stores each array once for the one field that holds it, so this file was edited or crafted (each reference would be rebuilt on its own); load the file pipekit wrote, or save the model again with pipekit.save() / learn.export()
    """
    from pipekit.core.component import _ARRAY

    fields: dict[str, list[str]] = {}  # array key -> its first two fields
    counts: dict[str, int] = {}
    stack: list[tuple[Any, str]] = [(record, "")]
    while stack:  # document order, without recursion: the earlier fields are named first
        node, path = stack.pop()
        if isinstance(node, dict):
            key = node.get(_ARRAY)
            if isinstance(key, str) and key in arrays:  # a key the file does not hold is refused when it is read
                counts[key] = counts.get(key, 0) + 1
                seen = fields.setdefault(key, [])
                if len(seen) < 2:
                    seen.append(path or "(the record itself)")
                continue
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in reversed(node.items())
                         if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((node[i], f"{path}[{i}]") for i in reversed(range(len(node)))
                         if isinstance(node[i], (dict, list)))
    stored = sum(int(a.nbytes) for a in arrays.values())
    referenced = sum(int(arrays[k].nbytes) * n for k, n in counts.items())
    if referenced <= MAX_REFERENCED_RATIO * stored + REFERENCED_FLOOR:
        return
    key = max(counts, key=lambda k: (int(arrays[k].nbytes) * (counts[k] - 1), -counts[k]))
    more = counts[key] - 2
    named = " and ".join(fields[key]) if more <= 0 else f"{', '.join(fields[key])} and {more} more field" + (
        "s" if more > 1 else "")
    raise ExportError(f"{where}: record.json refers to {_size(referenced)} of arrays where arrays.npz holds "
                      f"{_size(stored)} (at most {MAX_REFERENCED_RATIO}x, plus {_size(REFERENCED_FLOOR)}, is "
                      f"accepted): array {key!r} ({_size(int(arrays[key].nbytes))}) is referenced {counts[key]} times, "
                      f"from {named}. pipekit stores each array once for the one field that holds it, so this file was "
                      "edited or crafted (each reference would be rebuilt on its own); load the file pipekit wrote, or "
                      "save the model again with pipekit.save() / learn.export()")


# ------------------------------------------------------------------------------------------------- zips
def check_member_name(name: str, where: str) -> None:
    """A member name must be a plain relative path: no absolute path, drive, backslash, ``..``, ``.`` or
    empty component, no NUL."""
    parts = name.split("/")
    bad = (not name or name.startswith("/") or "\\" in name or "\x00" in name or ":" in parts[0]
           or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."))
    if bad:
        raise ExportError(f"{where}: member {name!r} is not a plain relative name (absolute paths, drives, "
                          "backslashes and '.'/'..' components are refused)")


_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")


def _directory_extent(f: Any, where: str) -> tuple[int, int]:
    """(number of members, central directory bytes) from the end records, read before zipfile parses the
    directory (it would build one object per member, however many a file claims)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    tail_len = min(size, _EOCD.size + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or tail_len - i < _EOCD.size:
        raise ExportError(f"{where} is not a zip archive (no end-of-directory record)")
    _, _, _, _, entries, cd_bytes, cd_offset, _ = _EOCD.unpack_from(tail, i)
    if entries == 0xFFFF or cd_bytes == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:  # zip64 end record
        at = size - tail_len + i - _EOCD64_LOCATOR.size
        f.seek(max(at, 0))
        loc = f.read(_EOCD64_LOCATOR.size)
        if at < 0 or len(loc) < _EOCD64_LOCATOR.size or loc[:4] != b"PK\x06\x07":
            raise ExportError(f"{where} is a damaged zip archive (zip64 locator missing)")
        rec_at = _EOCD64_LOCATOR.unpack(loc)[2]
        f.seek(rec_at)
        rec = f.read(_EOCD64.size)
        if rec_at >= size or len(rec) < _EOCD64.size or rec[:4] != b"PK\x06\x06":
            raise ExportError(f"{where} is a damaged zip archive (zip64 end record missing)")
        fields = _EOCD64.unpack(rec)
        entries, cd_bytes = fields[7], fields[8]
    return entries, cd_bytes


def _bounded_read(z: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytearray:
    """The member's bytes in a buffer of exactly its stated size; reading to the end checks the CRC."""
    size = info.file_size
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    try:
        with z.open(info) as member:
            while got < size:
                chunk = member.read(min(_CHUNK, size - got))
                if not chunk:
                    break
                view[got:got + len(chunk)] = chunk
                got += len(chunk)
            member.read(1)  # zipfile stops at the stated size and verifies the CRC there
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as e:
        raise ExportError(f"{where}: member {info.filename!r} is damaged or does not match its directory entry "
                          f"({e})") from None
    if got != size:
        raise ExportError(f"{where}: member {info.filename!r} is truncated: {_size(got)} of the "
                          f"{_size(size)} its directory entry states")
    return buf


class _BufferFile(io.RawIOBase):
    """A read-only file over bytes already in memory, without the copy ``io.BytesIO`` makes of a bytearray: an
    archive held inside another is read in place."""

    def __init__(self, data: bytes | bytearray | memoryview):
        self._view, self._pos = memoryview(data).cast("B"), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), len(self._view) - self._pos))
        b[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


def read_archive(source: str | os.PathLike | bytes | bytearray, limits: Limits, where: str,
                 max_total: int = MAX_TOTAL_BYTES) -> dict[str, bytearray]:
    """Read members of the zip ``source`` (a path or the archive's bytes) after checking its directory.

    ``limits`` maps each wanted member name to its uncompressed size cap (other members are left unread),
    or is a function giving the cap of every member (it raises :class:`ExportError` for a name it does not
    accept). Members, sizes, ratios and their total (at most ``max_total``) are checked before anything is
    inflated, and the directory must hold the members its end record counts.

    >>> import io, zipfile
    >>> from pipekit.core.archive import read_archive
    >>> from pipekit.core import ExportError
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as z:
    ...     z.writestr("record.json", "{}"); z.writestr("notes.txt", "x" * 100)
    >>> {k: bytes(v) for k, v in read_archive(buf.getvalue(), {"record.json": 1000}, where="m.zip").items()}
    {'record.json': b'{}'}
    >>> try:
    ...     read_archive(buf.getvalue(), {"notes.txt": 10}, where="m.zip")
    ... except ExportError as e:
    ...     print(e)
    m.zip: member 'notes.txt' inflates to 100 bytes, over the 10 bytes limit for this member
    """
    f: Any = _BufferFile(source) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb")
    with f:
        entries, cd_bytes = _directory_extent(f, where)
        if entries > MAX_MEMBERS or cd_bytes > MAX_DIRECTORY_BYTES:
            raise ExportError(f"{where} lists {entries:,} members in a {_size(cd_bytes)} directory; at most "
                              f"{MAX_MEMBERS:,} members and {_size(MAX_DIRECTORY_BYTES)} are accepted")
        f.seek(0)
        try:
            z = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error) as e:
            raise ExportError(f"{where} is not a readable zip archive ({e})") from None
        with z:
            infos = z.infolist()
            if len(infos) != entries:  # zipfile reads the whole directory, whatever the end record counts
                raise ExportError(f"{where}: its directory holds {len(infos):,} members where its end record "
                                  f"counts {entries:,}; the archive is damaged or crafted")
            wanted = _check_directory(infos, limits, where, max_total, length=f.seek(0, os.SEEK_END))
            return {info.filename: _bounded_read(z, info, where) for info in wanted}


def _check_directory(infos: list[zipfile.ZipInfo], limits: Limits, where: str,
                     max_total: int = MAX_TOTAL_BYTES, length: int | None = None) -> list[zipfile.ZipInfo]:
    """The members to read, after checking every directory entry; ``length``, the archive's real size, bounds
    what the entries may claim: their compressed bytes must lie inside it, a stored member holds as many bytes
    as it states, and all the members inflate to at most ``MAX_RATIO`` times it (sizes are otherwise only the
    directory's word, and a buffer is made for them before a byte is read)."""
    seen: set[str] = set()
    if length is not None:
        packed = sum(info.compress_size for info in infos)
        if packed > length:
            raise ExportError(f"{where}: its directory states {_size(packed)} of compressed members in a "
                              f"{_size(length)} file; the archive is damaged or crafted")
    for info in infos:
        name = info.filename
        check_member_name(name, where)
        if name in seen:
            raise ExportError(f"{where}: member {name!r} appears twice; each name must be unique")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise ExportError(f"{where}: member {name!r} is encrypted; pipekit files are never encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ExportError(f"{where}: member {name!r} uses compression method {info.compress_type}; only "
                              "stored and deflated members are accepted")
        if length is not None and (info.header_offset + info.compress_size > length or (
                info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size)):
            raise ExportError(f"{where}: member {name!r} states {_size(info.file_size)} "
                              f"({_size(info.compress_size)} stored at byte {info.header_offset:,}) that the "
                              f"{_size(length)} file does not hold; the archive is damaged or crafted")
    wanted, total = [], 0
    for info in infos:
        name = info.filename
        if isinstance(limits, Mapping):
            if name not in limits:
                continue
            cap = limits[name]
        else:
            cap = limits(name)
        if info.file_size > cap:
            raise ExportError(f"{where}: member {name!r} inflates to {_size(info.file_size)}, over the "
                              f"{_size(cap)} limit for this member")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ExportError(f"{where}: member {name!r} inflates {_size(info.compress_size)} to "
                              f"{_size(info.file_size)}, a compression ratio over {MAX_RATIO}:1 (a zip bomb); "
                              "pipekit writes members stored or lightly deflated")
        total += info.file_size
        wanted.append(info)
    if total > max_total:
        raise ExportError(f"{where}: members inflate to {_size(total)} together, over the "
                          f"{_size(max_total)} limit{'' if max_total == MAX_TOTAL_BYTES else ' left for them'}")
    if length is not None and total > RATIO_FLOOR + MAX_RATIO * length:
        raise ExportError(f"{where}: members inflate to {_size(total)} together from a {_size(length)} file, a "
                          f"compression ratio over {MAX_RATIO}:1 (a zip bomb); pipekit writes members stored or "
                          "lightly deflated")
    return wanted


# ---------------------------------------------------------------------------------------------- folders
def _regular_size(path: Path, where: str, max_bytes: int) -> int:
    """The size of the regular file ``path``, checked to be at most ``max_bytes``. A link is refused: a file of
    an export folder is the file itself, so a link could only send the reader somewhere else on the disk."""
    st = os.lstat(path)  # FileNotFoundError passes through: a missing file is not a malformed one
    if stat.S_ISLNK(st.st_mode):
        raise ExportError(f"{where} is a symbolic link; an export folder holds its files themselves "
                          "(copy the file in place of the link)")
    if not stat.S_ISREG(st.st_mode):
        raise ExportError(f"{where} is not a regular file")
    if st.st_size > max_bytes:
        raise ExportError(f"{where} is {_size(st.st_size)}, over the {_size(max_bytes)} limit for this file")
    return st.st_size


def read_file(path: str | os.PathLike, where: str, max_bytes: int = MAX_JSON_BYTES) -> bytearray:
    """A regular file of at most ``max_bytes`` (checked with stat before reading, and again while reading,
    in case it grows). Devices, pipes and sockets are refused (they have no size to check).

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pipekit.core.archive import read_file
    >>> from pipekit.core import ExportError
    >>> file = Path(tempfile.mkdtemp()) / "record.json"
    >>> _ = file.write_text('{"n": 1}')
    >>> bytes(read_file(file, "record.json"))
    b'{"n": 1}'
    >>> try:
    ...     read_file(file, "record.json", max_bytes=4)
    ... except ExportError as e:
    ...     print(e)
    record.json is 8 bytes, over the 4 bytes limit for this file
    """
    path = Path(path)
    size = _regular_size(path, where, max_bytes)
    # O_NOFOLLOW: a link put in place between the check above and this open is refused too; O_NONBLOCK: so is a
    # pipe (opening one for reading would wait for a writer), then reading blocks again for the regular file it is
    nonblock = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0) | nonblock)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ExportError(f"{where} is not a regular file")
        if nonblock:
            os.set_blocking(f.fileno(), True)
        buf = bytearray(size)
        got = f.readinto(buf)
        if got != size or f.read(1):
            raise ExportError(f"{where} changed size while being read")
    return buf


def read_folder(folder: str | os.PathLike, limits: Mapping[str, int], where: str) -> dict[str, bytearray]:
    """The files of ``limits`` that exist in ``folder`` (an export saved as a folder), with the same caps as
    the members of an archive: sizes are checked for all of them before any is read.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pipekit.core.archive import read_folder
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "record.json").write_text("{}")
    >>> files = read_folder(folder, {"record.json": 1000, "arrays.npz": 1000}, where="model")
    >>> {k: bytes(v) for k, v in files.items()}  # arrays.npz is not there
    {'record.json': b'{}'}
    """
    folder = Path(folder)
    sizes = {name: _regular_size(folder / name, f"{where}: {name!r}", cap) for name, cap in limits.items()
             if _lexists(folder / name)}  # a link, a broken one too, is refused naming it
    total = sum(sizes.values())
    if total > MAX_TOTAL_BYTES:
        raise ExportError(f"{where}: files total {_size(total)}, over the {_size(MAX_TOTAL_BYTES)} limit")
    return {name: read_file(folder / name, f"{where}: {name!r}", limits[name]) for name in sizes}


# ----------------------------------------------------------------------------------------------- arrays
def array_from_npy(data: bytearray, where: str) -> np.ndarray:
    """One ``.npy`` member as an array over ``data`` (no copy), parsed without pickle. The header must
    describe numbers, booleans or strings, and exactly the bytes that follow it."""
    fp = io.BytesIO(bytes(data[:_NPY_PREFIX + NPY_HEADER_BYTES]))
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=NPY_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=NPY_HEADER_BYTES)
        else:
            raise ExportError(f"{where}: .npy format version {version} is not accepted (1.0 and 2.0 are)")
    except ExportError:
        raise
    except Exception as e:  # numpy's header parser raises several types for a malformed header
        raise ExportError(f"{where} is not a NumPy array ({type(e).__name__}: {e})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in _NPY_KINDS:
        raise ExportError(f"{where} holds {dtype} values; only numbers, booleans and strings are accepted "
                          "(no Python objects, records or sub-arrays)")
    if dtype.itemsize == 0:  # NumPy writes no such header; np.zeros would widen it to one char and allocate
        raise ExportError(f"{where} holds {dtype} values of 0 bytes each; NumPy writes strings of at least one "
                          "character, so this header was not written by it")
    most = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32  # the dimensions a NumPy array can have
    if len(shape) > most or any(n < 0 for n in shape) or (
            math.prod(n for n in shape if n) * dtype.itemsize > np.iinfo(np.intp).max):  # even with a 0 among them
        raise ExportError(f"{where}: its header says shape {str(shape)[:200]} of {dtype}, which no NumPy array has "
                          f"(at most {most} dimensions, none negative, {np.iinfo(np.intp).max:,} bytes in all): "
                          "the file is damaged or was not written by NumPy")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    offset = fp.tell()
    if len(data) - offset != nbytes:
        raise ExportError(f"{where}: its header says shape {shape} of {dtype} ({_size(nbytes)}) but "
                          f"{_size(len(data) - offset)} follow")
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C")


def read_npz(source: str | os.PathLike | bytes | bytearray, where: str, limits: Mapping[str, int] | None = None,
             max_array_bytes: int = MAX_ARRAY_BYTES, max_total: int = MAX_TOTAL_BYTES) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (a path or its bytes), each capped at ``max_array_bytes`` of data or at
    ``limits[key]``, all together at ``max_total``; every member must be a ``.npy`` array.

    >>> buf = io.BytesIO(); np.savez(buf, w=np.arange(3.0))
    >>> read_npz(buf.getvalue(), where="arrays.npz")["w"].tolist()
    [0.0, 1.0, 2.0]
    """
    limits = dict(limits or {})

    def cap(name: str) -> int:
        if not name.endswith(".npy"):
            raise ExportError(f"{where}: member {name!r} is not a NumPy array (.npy); an .npz holds only arrays")
        return limits.get(name[:-4], max_array_bytes) + _NPY_PREFIX + NPY_HEADER_BYTES

    raw = read_archive(source, cap, where, max_total)
    return {name[:-4]: array_from_npy(data, f"{where}: member {name!r}") for name, data in raw.items()}


# ---------------------------------------------------------------------------------------- pipekit files
#: The one format every pipekit export is written in (learners, models, ensembles, fitted table
#: processing, text encoders): a zip (or a folder) of manifest.json, record.json, arrays.npz and
#: weights.safetensors. Version 1 was pipekit 0.1's per-kind formats. Version 3 moved how a table's CSV file
#: was read (``skipinitialspace``) from the TabularRecipe to its TabularProcessor. Version 4 caches a
#: RandomResizedCrop's whole image (``whole_image``; an older file's crops were of the cached centre). A file of an
#: older version is read by rewriting its record into the current shape (``pipekit.core.component.upgrade``, each
#: class's ``upgrade_record``), then loaded as strictly as a current one.
FORMAT, VERSION = "pipekit", 4
#: the oldest format read (rewritten into the current one as it is read, by ``pipekit.core.component.upgrade``)
MIN_VERSION = 2
_LIMITS = {"manifest.json": MAX_JSON_BYTES, "record.json": MAX_JSON_BYTES, "arrays.npz": MAX_TOTAL_BYTES,
           "weights.safetensors": MAX_WEIGHTS_BYTES}


@dataclass
class Archive:
    """What a pipekit file holds: its ``kind``, the ``record`` (plain data), arrays and torch weights.

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from pipekit.core.archive import read_pipekit, write_archive
    >>> file = write_archive(Path(tempfile.mkdtemp()) / "m.pipekit", "component", {"n": 1}, {"w": np.arange(3.0)})
    >>> archive = read_pipekit(file)
    >>> archive.kind, archive.record, archive.arrays["w"].tolist(), archive.weights
    ('component', {'n': 1}, [0.0, 1.0, 2.0], None)
    """

    kind: str
    record: Any
    arrays: dict[str, np.ndarray]
    weights: bytes | None
    where: str

    def tensors(self) -> dict[str, Any]:
        """The weights as torch tensors (read by safetensors, which runs no code)."""
        from safetensors.torch import load

        if self.weights is None:
            raise ExportError(f"{self.where} holds no weights.safetensors")
        try:
            return load(bytes(self.weights))
        except Exception as e:  # safetensors raises its own error type for a bad header
            raise ExportError(f"{self.where}: weights.safetensors could not be read ({type(e).__name__}: {e}); "
                              "the file is damaged or was not written by pipekit") from None


# ------------------------------------------------------------------------------------------ writing files
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
_TEMP_TRIES = 16
#: the longest file name most file systems take (bytes), and what :func:`hidden_temp_name` adds to a name
_NAME_MAX = 255
_TEMP_EXTRA = len(".." + "0" * 8 + ".tmp")


def hidden_temp_name(dest: Path) -> str:
    """``.<name>.<8 random hex digits>.tmp``: the temporary name :func:`atomic_output` gives a file beside ``dest``. A
    name over 241 bytes is cut short in the temporary name (only), which stays within the 255 bytes of a file name."""
    name = dest.name
    while len(os.fsencode(name)) > _NAME_MAX - _TEMP_EXTRA and len(name) > 1:
        name = name[:-1]
    return f".{name}.{os.urandom(4).hex()}.tmp"


def _remove_if_file(path: Path) -> None:
    """Remove ``path`` when it is a regular file (never a link or folder at that name)."""
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            path.unlink()
    except OSError:
        pass


def new_temp_file(folder: Path, name: Callable[[], str]) -> tuple[int, Path]:
    """A new empty regular file in ``folder``, open for writing: ``(fd, path)``. ``name()`` gives its name and must put
    random characters in it. The file is created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` (mode 0666 less the umask, as
    ``open`` gives): whatever is already at a name (a file, a link someone planted to make pipekit write where it
    points) is never opened, and another random name is tried. Write through ``fd``, not by opening ``path`` again.
    A Ctrl-C (or any error that is not the file system's) while the file is being created removes it again.

    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from pipekit.core.archive import new_temp_file
    >>> folder = Path(tempfile.mkdtemp())
    >>> fd, path = new_temp_file(folder, lambda: f".pack.{os.urandom(4).hex()}.tmp")
    >>> with open(fd, "wb") as f:
    ...     _ = f.write(b"data")
    >>> path.parent == folder, path.name.startswith(".pack."), path.read_bytes()
    (True, True, b'data')
    """
    for _ in range(_TEMP_TRIES):
        path = folder / name()
        try:
            return os.open(path, _NEW_FILE, 0o666), path
        except FileExistsError:
            continue
        except OSError:  # nothing was created
            raise
        except BaseException:  # Ctrl-C as it was created: the file may be there, with no descriptor handed out
            _remove_if_file(path)
            raise
    raise FileExistsError(errno.EEXIST, f"no new temporary file could be created in {folder}: {_TEMP_TRIES} random "
                          "names were all taken; remove the hidden files ending in .tmp there and write again",
                          str(folder))


def why_unwritable(path: str | os.PathLike, error: OSError) -> str:
    """Why the folder ``path`` cannot be written, in words: a file in the way (at its name, or at one of the folders
    above it) is named, else the file system's reason for ``error``.

    >>> import tempfile
    >>> file = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = file.write_text("a file")
    >>> why_unwritable(file, OSError()), why_unwritable(file / "plots", OSError()) == f"{file} is a file, not a folder"
    ('a file of that name is there', True)
    """
    path = Path(path)
    in_the_way = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if in_the_way == path:
        return "a file of that name is there"
    if in_the_way is not None:
        return f"{in_the_way} is a file, not a folder"
    return error.strerror or str(error)


def unwritable_error(error: OSError, message: str) -> OSError:
    """An OSError of ``error``'s kind and errno that says ``message``, with ``error`` as its ``__cause__``: raised in
    place of the file system's error to name the file asked for (not a temporary file beside it) and the fix.

    >>> e = unwritable_error(PermissionError(13, "Permission denied"), "cannot write model.pipekit")
    >>> type(e).__name__, e.errno, str(e), type(e.__cause__).__name__
    ('PermissionError', 13, '[Errno 13] cannot write model.pipekit', 'PermissionError')
    """
    new = type(error)(error.errno, message) if error.errno is not None else type(error)(message)
    new.__cause__ = error
    return new


def _write_probe(folder: Path) -> None:
    """Create, then remove, an empty hidden file in ``folder`` as a save does (:func:`new_temp_file`); raises the
    file system's OSError when that cannot be done (a read-only mount, a folder of another user's)."""
    fd, probe = new_temp_file(folder, lambda: hidden_temp_name(folder / "write-test"))
    os.close(fd)
    probe.unlink()


def writable_folder(folder: str | os.PathLike, who: str, fix: str) -> Path:
    """``folder``, made if missing, once a file has been written in it and removed again; where that cannot be done,
    the file system's OSError (:func:`unwritable_error`) with a message that starts with ``who``, names the folder and
    why (:func:`why_unwritable`), and ends with ``fix``, the ways to give ``who`` another folder. Whatever writes
    during a long run calls it first, so a folder it cannot write stops the run before its work rather than after it.

    >>> import tempfile
    >>> file = Path(tempfile.mkdtemp()) / "runs"
    >>> _ = file.write_text("a file")
    >>> try:
    ...     writable_folder(file, "MyLogger", "MyLogger(folder='<a writable folder>')")
    ... except FileExistsError as e:
    ...     print(str(e).replace(str(file), "<runs>"))
    [Errno 17] MyLogger writes in the folder <runs>, which cannot be written (a file of that name is there); give it a writable folder: MyLogger(folder='<a writable folder>')
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_probe(folder)
    except OSError as e:
        raise unwritable_error(e, f"{who} writes in the folder {folder}, which cannot be written "
                                  f"({why_unwritable(folder, e)}); give it a writable folder: {fix}") from e
    return folder


def _keep_mode(fd: int, dest: Path) -> None:
    """Give the new file ``fd`` the permission bits of the regular file at ``dest`` it is to replace (a 0600 file stays
    0600); a link at ``dest``, or no file there, leaves the new file's mode as created, and so does a file system that
    refuses to set one (the save goes on)."""
    try:
        st = os.lstat(dest)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode) and os.chmod in os.supports_fd:
        with suppress(OSError):  # best effort: a file system that keeps no modes (vfat, some mounts)
            os.chmod(fd, stat.S_IMODE(st.st_mode) & 0o777)


@contextmanager
def atomic_output(dest: str | os.PathLike, name: Callable[[], str] | None = None) -> Iterator[IO[bytes]]:
    """A new temporary file beside ``dest`` (:func:`new_temp_file`; named by ``name()``, by default
    :func:`hidden_temp_name`), open for writing; when the block ends without an error it is renamed over ``dest``, so
    a reader sees the old file or the new one, never half of one. The rename replaces a link at ``dest`` (the link,
    not the file it points to). A regular file replaced passes its permission bits on to the new one, given before any
    byte is written. An error or Ctrl-C in the block (or while the temporary file is made) removes the temporary file
    and leaves ``dest`` as it was. The folder must exist.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_output(folder / "a.bin") as f:
    ...     _ = f.write(b"data")
    >>> [p.name for p in folder.iterdir()], (folder / "a.bin").read_bytes()
    (['a.bin'], b'data')
    """
    dest = Path(dest)
    tmp: Path | None = None
    try:  # from before the file is made: no Ctrl-C can fall between making it and removing it on an error
        fd, tmp = new_temp_file(dest.parent, name or (lambda: hidden_temp_name(dest)))
        try:
            _keep_mode(fd, dest)
            f = open(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
        os.replace(tmp, dest)
    except BaseException:  # an error or Ctrl-C: the file there before stays, and no temporary file is left
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def _write_all(f: IO[bytes], data: bytes | bytearray | memoryview) -> None:
    """Where :func:`atomic_write_bytes` writes every byte (each file of a folder export goes through here)."""
    f.write(data)


def atomic_write_bytes(dest: str | os.PathLike, data: bytes | bytearray | memoryview,
                       name: Callable[[], str] | None = None) -> None:
    """Write ``data`` to ``dest`` through :func:`atomic_output`.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pipekit.core.archive import atomic_write_bytes
    >>> dest = Path(tempfile.mkdtemp()) / "meta.json"
    >>> atomic_write_bytes(dest, b'{"n": 1}')
    >>> atomic_write_bytes(dest, b'{"n": 2}')  # replaces the file whole
    >>> dest.read_bytes(), [p.name for p in dest.parent.iterdir()]
    (b'{"n": 2}', ['meta.json'])
    """
    with atomic_output(dest, name) as f:
        _write_all(f, data)


def write_archive(path: str | os.PathLike, kind: str, record: Any, arrays: dict[str, np.ndarray] | None = None,
                  weights: dict[str, Any] | None = None) -> Path:
    """Write a pipekit file: one zip (a temporary file renamed over ``path``), or, when ``path`` has no extension or is
    a folder, the same files written into that folder (see ``_write_folder``). A file that cannot be written raises the
    file system's OSError (of the same kind, the original as its ``__cause__``) naming ``path`` and its folder, never
    the temporary file beside it.

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from pipekit.core.archive import read_pipekit, write_archive
    >>> folder = write_archive(Path(tempfile.mkdtemp()) / "model", "component", {"n": 1}, {"w": np.zeros(2)})
    >>> sorted(p.name for p in folder.iterdir()), read_pipekit(folder).arrays["w"].tolist()
    (['arrays.npz', 'manifest.json', 'record.json'], [0.0, 0.0])
    """
    from pipekit import __version__

    files = {"manifest.json": json.dumps({"format": FORMAT, "version": VERSION, "kind": kind,
                                          "pipekit": __version__}).encode(),
             "record.json": json.dumps(record).encode()}
    if arrays:
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        files["arrays.npz"] = buf.getvalue()
    if weights is not None:
        from safetensors.torch import save

        files["weights.safetensors"] = save({k: v.detach().cpu().contiguous() for k, v in weights.items()})
    path = Path(path)
    folder = path if path.is_dir() or not path.suffix else path.parent
    try:
        if folder is path:
            return _write_folder(path, files)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as f, zipfile.ZipFile(f, "w") as z:
            for k, v in files.items():
                z.writestr(k, v, compress_type=zipfile.ZIP_STORED if k.endswith(".safetensors") else zipfile.ZIP_DEFLATED)
    except OSError as e:  # said of the file asked for, not of the temporary file beside it
        msg = f"cannot write {path} (in the folder {folder.resolve()}): {e.strerror or e}"
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            msg += ("; the folder cannot be written: give a path in a folder you can write to (an absolute one such as "
                    "/tmp/model.pipekit, or a relative one under a writable learn.path)")
        raise unwritable_error(e, msg) from e
    return path


def _describes_pipekit(manifest: Any) -> bool:
    """Whether a parsed manifest.json is a pipekit file's: the check ``read_pipekit`` makes before reading a file,
    and the one ``_write_folder`` makes before replacing a folder's files."""
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


#: what manifest.json of the export a folder holds is renamed to while another export replaces it: a folder holding it
#: (and no manifest.json) is one a pipekit export was being written into, whose files the next export may replace
REPLACING_MARKER = ".manifest.json.replacing"


def _manifest_problem(file: Path) -> str | None:
    """Why ``file`` (manifest.json, or the marker it is renamed to) is no pipekit export's manifest (a link, too large,
    not a regular file, unreadable, not JSON, another program's); None when it is one."""
    try:
        data = read_file(file, f"its {file.name!r}")
    except (ExportError, OSError) as e:
        return str(e)
    with suppress(ExportError):  # not JSON: said as another program's is
        if _describes_pipekit(parse_json(data, f"{file}")):
            return None
    return f"its {file.name!r} is not a pipekit export's manifest"


def _lexists(path: Path) -> bool:
    """Whether anything is at ``path``, of any file type, a link (even a broken one) included."""
    try:
        os.lstat(path)
    except OSError:
        return False
    return True


def export_folder_kind(path: str | os.PathLike) -> Literal["ours", "foreign", "none"]:
    """What the folder ``path`` holds, as every reader and writer of export folders sees it. ``"ours"``: a pipekit
    export (``learn.export``, ``pipekit.save`` or ``save_pickle`` given a name without an extension): its manifest.json
    is a pipekit file's manifest, or it has no manifest.json and the marker :data:`REPLACING_MARKER` is one (an export
    into it was stopped part-way, which ``read_pipekit`` then says). ``"foreign"``: its manifest.json (or, without
    one, the marker) is there, of any file type, but is no pipekit manifest: another program's, a symbolic link, not
    a regular file, too large or not JSON (``read_pipekit`` names which). ``"none"``: it holds neither, or ``path``
    is no folder. The files are looked at with lstat and read without following links, as ``read_pipekit`` reads
    them.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pipekit.core.archive import export_folder_kind, write_archive
    >>> folder = Path(tempfile.mkdtemp())
    >>> export_folder_kind(write_archive(folder / "model", "component", {"n": 1})), export_folder_kind(folder)
    ('ours', 'none')
    >>> _ = (folder / "manifest.json").write_text('{"name": "a web app"}')
    >>> export_folder_kind(folder)
    'foreign'
    """
    return _folder_kind(Path(path))[0]


def _folder_kind(path: Path) -> tuple[Literal["ours", "foreign", "none"], str]:
    """:func:`export_folder_kind` of ``path``, and for ``"foreign"`` why the file that decided is no pipekit export's
    manifest (an empty text otherwise)."""
    if not path.is_dir():
        return "none", ""
    for name in ("manifest.json", REPLACING_MARKER):  # a manifest.json, when there, decides
        if _lexists(path / name):
            why = _manifest_problem(path / name)
            return ("ours", "") if why is None else ("foreign", why)
    return "none", ""


def is_export_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder to hand to ``load`` as the file it stands for (:func:`export_folder_kind` is not
    ``"none"``): a pipekit export written into it, or a folder whose manifest.json (or marker of an export stopped
    part-way) is no pipekit export's, of which ``load`` then says what is wrong. Any other folder is no model file.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pipekit.core.archive import is_export_folder, write_archive
    >>> folder = Path(tempfile.mkdtemp())
    >>> is_export_folder(write_archive(folder / "model", "component", {"n": 1})), is_export_folder(folder)
    (True, False)
    >>> _ = (folder / "manifest.json").write_text('{"name": "a web app"}')  # load says it is not pipekit's
    >>> is_export_folder(folder)
    True
    """
    return export_folder_kind(path) != "none"


def _write_folder(path: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` into the folder ``path`` (created if missing). The folder itself is never moved, replaced or
    given a sibling, so a mount point, a folder in a read-only parent, and the folder's own mode, owner and ACLs all
    stay as they are; only the export's own files in it are written.

    When the folder holds a manifest.json, it must be a pipekit export's (read as ``read_pipekit`` reads it): one
    that is not, or that cannot be parsed, belongs to another program and is refused with an :class:`ExportError`
    before anything is touched. A folder that holds no pipekit export must not hold any file this export writes
    (``record.json``, ``weights.safetensors``, ``arrays.npz``): such a file is the user's own, and the export is
    refused with an :class:`ExportError` naming it before anything is touched. A folder without manifest.json but
    with the hidden marker :data:`REPLACING_MARKER` (a pipekit manifest) is one an export was being written into when
    its process was killed: its files are pipekit's, and are replaced.

    Replacing an export, its manifest.json is first renamed to that marker (until a manifest.json is written again,
    ``load`` refuses the folder, and the marker says whose files are left), the files of that previous export that
    this one does not write are removed (only when the folder held a pipekit export: a folder that never did keeps
    every file in it, e.g. a user's own ``arrays.npz`` beside an export that writes none), and each file is written as
    a hidden temporary file in the folder and renamed over its name (:func:`atomic_write_bytes`), manifest.json last;
    then the marker is removed. An error or Ctrl-C part-way removes the temporary file and the export's files (those
    this call wrote and those of the previous export, with the marker), so an interrupted export leaves a folder
    ``load`` refuses (no manifest.json), never the new record beside the old weights, and the export can simply be
    run again; a folder this call created is removed. Files pipekit does not write are never touched."""
    if path.exists() and not path.is_dir():
        raise ExportError(f"cannot export to {path}: a file of that name exists, and a path without an extension is "
                          f"written as a folder; give the file name an extension (e.g. {path.name}.pipekit) or "
                          "remove the file")
    manifest, marker = path / "manifest.json", path / REPLACING_MARKER
    kind = export_folder_kind(path)
    if kind == "foreign" and _lexists(manifest):
        raise ExportError(f"cannot export to {path}: {manifest} is not a pipekit export's manifest, so it belongs "
                          "to another program, and an export would overwrite it; export into another folder "
                          f"(e.g. {path / 'model'}) or to a file (e.g. {path}.pipekit)")
    ours = kind == "ours"  # a pipekit export, or one killed part-way: its files are pipekit's
    if path.is_dir() and not ours:
        taken = [k for k in sorted(files) if _lexists(path / k)]
        if taken:
            raise ExportError(f"cannot export to {path}: it holds no pipekit export, yet it holds {taken}, which the "
                              "export would overwrite; export into another folder (e.g. "
                              f"{path / 'model'}) or to a file (e.g. {path}.pipekit), or move those files away (files "
                              "left by an interrupted pipekit export can be deleted)")
    created = not path.is_dir()
    path.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        if ours:
            if _lexists(manifest):
                # until a manifest is written again, the folder is no export load accepts; the marker says whose
                # files are left, should this process be killed before then
                os.replace(manifest, marker)
            written = [path / k for k in _LIMITS] + [marker]  # from here on, every export file in it is pipekit's
            for name in _LIMITS:  # the previous export's files this one does not replace
                if name not in files:
                    (path / name).unlink(missing_ok=True)
        for k in sorted(files, key=lambda k: k == "manifest.json"):
            atomic_write_bytes(path / k, files[k])  # a reader never sees half a file; an error leaves no temporary
            written.append(path / k)
    except BaseException:
        # the export's files, none of them the user's (a folder holding one is refused above): no half-written export
        # is left, and the export can be run again
        for f in written:
            with suppress(OSError):
                f.unlink(missing_ok=True)
        if created:  # nothing was there before: leave nothing
            try:
                path.rmdir()
            except OSError:  # something else was put in it meanwhile: keep it
                pass
        raise
    with suppress(OSError):  # the new manifest is in place
        marker.unlink(missing_ok=True)
    return path


def _pickled(where: str, sign: str) -> ExportError:
    """Why a pickle file (fastai's export.pkl, any torch.save file) is refused, and what to write instead."""
    return ExportError(f"{where} is not a pipekit file: {sign}, so this is a pickle file (e.g. fastai's export.pkl, "
                       "or weights written by torch.save); pipekit never unpickles, because loading a pickle can run "
                       "arbitrary code. pipekit files are zips written by learn.export(), model.export() or "
                       "pipekit.save(): train the model with pipekit and write it with learn.export('model.pipekit')")


def read_pipekit(path: str | os.PathLike) -> Archive:
    """Read a pipekit file with every limit above; an older or foreign file gets a message saying what it is.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pipekit.core.archive import read_pipekit, write_archive
    >>> from pipekit.core import ExportError
    >>> folder = Path(tempfile.mkdtemp())
    >>> read_pipekit(write_archive(folder / "m.pipekit", "component", {"n": 1})).record
    {'n': 1}
    >>> _ = (folder / "export.pkl").write_bytes(bytes([128, 4, 149]))  # what fastai's pickled export starts with
    >>> try:
    ...     read_pipekit(folder / "export.pkl")
    ... except ExportError as e:
    ...     print(str(e)[str(e).index("is not"):][:70])
    is not a pipekit file: it begins as pickled data does, so this is a pi
    """
    path = Path(path)
    where = str(path)
    if path.is_dir():
        files = read_folder(path, _LIMITS, where)
    elif not path.exists():
        hint = ""
        if path.suffix == ".pkl":  # the book's load_learner(path/'export.pkl'): pipekit's export has its own name
            beside = [p for p in (path.with_suffix(".pipekit"), path.parent / "export.pipekit") if p.exists()]
            hint = ("; pipekit's learn.export() writes export.pipekit (under learn.path), or the name given to it "
                    "whatever its suffix, and fastai's pickled exports are never read: "
                    + (f"load {beside[0]}" if beside else "check the path, or load the file learn.export() wrote"))
        raise FileNotFoundError(f"no such file: {path}{hint}")
    elif not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(4)
        if head == b"PK\x03\x04":  # a zip's first entry, without the directory a zip ends with
            raise ExportError(f"{where} is a zip cut short ({path.stat().st_size} bytes, without the directory a zip "
                              "ends with): the file is truncated or damaged, e.g. by an interrupted copy or download; "
                              "copy it again, or export the model again")
        if head[:1] == b"\x80":
            raise _pickled(where, "it begins as pickled data does")
        raise ExportError(f"{where} is not a pipekit file. pipekit files are zips written by learn.export(), "
                          "model.export() or pipekit.save(); pickled files are refused because loading them could "
                          "run arbitrary code.")
    else:
        def limit(name: str) -> int:
            if name.endswith(".pkl"):  # torch.save writes a zip of '<name>/data.pkl' and the tensors' storages
                raise _pickled(where, f"its member {name!r} is not part of a pipekit file but pickled data")
            if name not in _LIMITS and name not in ("recipe.json", "model.safetensors") and not name.endswith(".npy"):
                raise ExportError(f"{where}: member {name!r} is not part of a pipekit file")
            return _LIMITS.get(name, MAX_WEIGHTS_BYTES if name.endswith(".safetensors") else MAX_ARRAY_BYTES)

        files = read_archive(path, limit, where)
    if "manifest.json" not in files:
        old = "recipe.json" in files or any(k.endswith(".npy") for k in files)
        folder, why = _folder_kind(path)  # without manifest.json, the marker decides
        raise ExportError(f"{where} was written by pipekit 0.1 (file format 1); this pipekit reads formats {MIN_VERSION} to {VERSION}. "
                          "Train and export the model again with this version (learn.export(path) or "
                          "model.export(path)), or load it with pipekit 0.1." if old else
                          f"{where} has no manifest.json: an export into this folder was stopped before it finished "
                          "(its files are left incomplete); export the model into it again" if folder == "ours" else
                          f"{where} has no manifest.json; it is not a pipekit file{f' ({why})' if why else ''}")
    manifest = parse_json(files["manifest.json"], f"{where}: manifest.json")
    if not _describes_pipekit(manifest):
        raise ExportError(f"{where}: manifest.json does not describe a pipekit file")
    version, kind = manifest.get("version"), manifest.get("kind")
    if not isinstance(version, int) or isinstance(version, bool) or not isinstance(kind, str):
        raise ExportError(f"{where}: manifest.json needs an integer 'version' and a text 'kind', got {manifest}")
    if version < MIN_VERSION:  # format 1 had no manifest: a manifest saying 1 was not written by pipekit
        raise ExportError(f"{where}: manifest.json says format {version}; this pipekit reads formats "
                          f"{MIN_VERSION} to {VERSION}, and format 1 files have no manifest")
    if version > VERSION:
        raise ExportError(f"{where} was written by a newer pipekit (format {version} > {VERSION}); upgrade pipekit")
    if "record.json" not in files:
        raise ExportError(f"{where} has no record.json; it is not a complete pipekit file")
    record = parse_json(files["record.json"], f"{where}: record.json")
    if version < VERSION:
        from pipekit.core.component import upgrade

        record = upgrade(record, version)
    stray = sorted(k for k in files if k not in _LIMITS)
    if stray:  # the members of pipekit 0.1's layout, which a file with a manifest never holds
        raise ExportError(f"{where}: member(s) {stray[:5]} are not part of a pipekit file of format {version}")
    # one budget for everything held while reading: the members read so far and the arrays inside arrays.npz,
    # which is read in place (no copy of it is made)
    npz = files.pop("arrays.npz", None)
    held = sum(len(v) for v in files.values()) + (len(npz) if npz is not None else 0)
    arrays = read_npz(npz, f"{where}: arrays.npz", max_total=MAX_TOTAL_BYTES - held) if npz is not None else {}
    del npz
    check_array_references(record, arrays, where)  # before any record is built from the arrays
    weights = files.pop("weights.safetensors", None)
    # safetensors reads bytes: the one copy is made after the other buffers are let go
    return Archive(kind, record, arrays, bytes(weights) if weights is not None else None, where)


@contextmanager
def building_from(where: str) -> Iterator[None]:
    """Around turning a file's records into objects, after every specific check: an error that is not pipekit's own
    (a check a crafted file slipped past, so a library fails on what it was handed) becomes an
    :class:`ExportError` naming the file, chained to the original. Running out of memory stays as it is.

    >>> with building_from("model.pipekit"):
    ...     {}["members_"]
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ExportError: model.pipekit could not be loaded: KeyError: 'members_'; the file is damaged or not written by pipekit
    """
    try:
        yield
    except (PipekitError, MemoryError):
        raise
    except ImportError as e:  # a package the file's model needs is not installed here: the file is not to blame
        raise ExportError(f"{where} could not be loaded: {type(e).__name__}: {str(e)[:300]}") from e
    except Exception as e:  # noqa: BLE001  (whatever a library raises on state it was not meant to get)
        raise ExportError(f"{where} could not be loaded: {type(e).__name__}: {str(e)[:300]}; the file is damaged or "
                          "not written by pipekit") from e


def _pipekit_part(obj: Any, name: str, depth: int = 0) -> str | None:
    """How to reach the pipekit component held by a scikit-learn Pipeline or search (``pipe[-1]``,
    ``search.best_estimator_``), or None when it holds none."""
    from pipekit.core.component import Component

    if isinstance(obj, Component):
        return name
    if depth > 8 or not type(obj).__module__.startswith("sklearn"):
        return None
    steps = getattr(obj, "steps", None)
    if isinstance(steps, list):  # a Pipeline: its last pipekit step
        for i in reversed(range(len(steps))):
            step = steps[i][1] if isinstance(steps[i], tuple) and len(steps[i]) == 2 else None
            found = _pipekit_part(step, f"{name}[{-1 if i == len(steps) - 1 else i}]", depth + 1)
            if found:
                return found
        return None
    best = getattr(obj, "best_estimator_", None)  # a fitted search (GridSearchCV, RandomizedSearchCV, ...)
    return _pipekit_part(best, f"{name}.best_estimator_", depth + 1) if best is not None else None


def _saved_instead(obj: Any) -> str:
    """What writes ``obj`` when ``pipekit.save`` cannot: what ``save_pickle`` says of a processed table, a pandas or
    Polars frame or series and a NumPy array (how it writes one back as it is, or its own fix for one it refuses), or
    the pipekit estimator a scikit-learn Pipeline or search holds."""
    from pipekit.tabular.saving import save_pickle_hint

    hint = save_pickle_hint(obj)
    if hint is not None:
        return f"; {hint}"
    if not type(obj).__module__.startswith("sklearn"):
        return ""
    var = "pipe" if isinstance(getattr(obj, "steps", None), list) else "search"
    part = _pipekit_part(obj, var)
    if part is not None:
        rest = (" (the steps before it are not saved: apply them to new data again before predicting)"
                if "[" in part else "")
        return (f"; save the pipekit estimator it holds: pipekit.save({part}, path){rest}, or the whole "
                f"{type(obj).__name__} with joblib, for files you trust only (joblib unpickles)")
    if var == "search" and _pipekit_part(getattr(obj, "estimator", None), "search.estimator") is not None:
        return ("; fit the search (with refit=True) and save the best model it found: "
                "pipekit.save(search.best_estimator_, path)")
    return ""


def save(obj: Any, path: str | os.PathLike) -> Path:
    """Write any pipekit object to one file: a learner (``learn.export``) or any component (a backend,
    an ensemble, a fitted processing, a recipe). ``load`` reads it back. A relative ``path`` is under the working
    folder, as ``load`` reads it, a learner's too (``learn.export`` itself puts a relative name under ``learn.path``);
    a path without an extension is written as a folder holding the same files.

    >>> import tempfile
    >>> from pathlib import Path
    >>> import polars as pl
    >>> import pipekit
    >>> from pipekit.data import Categorize
    >>> c = Categorize(); c.setup(pl.Series(["dog", "cat", "dog"]))
    >>> file = pipekit.save(c, Path(tempfile.mkdtemp()) / "labels.pipekit")
    >>> file.name, pipekit.load(file).vocab_
    ('labels.pipekit', ['cat', 'dog'])
    """
    from pipekit.core.component import Component

    if not isinstance(obj, Component) and hasattr(obj, "export"):  # a learner: in the working folder, not learn.path
        obj.export(Path(path).absolute())
        return Path(path)
    if not isinstance(obj, Component):
        raise ExportError(f"pipekit.save: a {type(obj).__name__} is not a pipekit component or learner"
                          f"{_saved_instead(obj)}")
    arrays: dict[str, np.ndarray] = {}
    record = obj.to_record(arrays)
    return write_archive(path, "component", record, arrays)


def load(path: str | os.PathLike, **kwargs: Any) -> Any:
    """Open any pipekit file without importing anything first: learners come back as learners, models,
    ensembles and fitted processing as themselves, encoders as modules. Loading never runs code from
    the file: every class it builds is looked up in pipekit's registry by name.

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np, polars as pl, pipekit
    >>> from pipekit.backends import RandomForest, as_data
    >>> xs = pl.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
    >>> rf = RandomForest("regression", n_estimators=5, seed=0).fit(as_data(xs, y=2 * np.arange(40.0)))
    >>> file = pipekit.save(rf, Path(tempfile.mkdtemp()) / "rf.pipekit")
    >>> back = pipekit.load(file)                # a RandomForest again, with no import of its class
    >>> back, bool(np.array_equal(back.predict(as_data(xs)), rf.predict(as_data(xs))))
    (RandomForest(task='regression', n_estimators=5), True)
    """
    from pipekit.core.component import Component
    from pipekit.core.forks import check_fork_safe
    from pipekit.core.registry import lookup

    check_fork_safe("pipekit.load")  # building a loaded model's processing runs Polars work, which would hang
    archive = read_pipekit(path)
    if archive.kind == "component":
        with building_from(archive.where):
            try:
                return Component.from_record(archive.record, archive.arrays)
            except FieldError as e:  # names its field from the top of the record
                raise ExportError(f"{archive.where}: record.json {e}") from None
            except ExportError as e:
                raise ExportError(f"{archive.where}: record.json: {e}") from None
    try:
        loader = lookup(archive.kind, "loader")
    except KeyError:
        raise ExportError(f"{archive.where}: a file of kind {archive.kind!r} cannot be loaded by this pipekit") from None
    with building_from(archive.where):
        return loader(archive, **kwargs)
