"""Safe extraction of data set archives (.tgz/.tar/.zip): regular files and directories only.

The rules are those of Python's ``tarfile`` extraction filter ``"data"``, applied by pipekit itself so
that tar and zip archives get the same treatment on every Python version (the filter shipped before
Python 3.11.13/3.12.11 can be bypassed through crafted link chains):

- a member whose path leaves the destination (absolute, ``..``, or a sibling folder sharing its
  prefix, ``/x/data-evil`` next to ``/x/data``) is refused, and so is a symlink or hard link whose
  target leaves it: the whole archive is refused before anything is written;
- device nodes, FIFOs, sockets and symlinks are skipped and reported (data sets do not need them);
  a hard link to a regular file of the archive is written as a copy of that file;
- permission bits are kept to ``rwxr-xr-x`` (no setuid, setgid or sticky bit, no group/other write)
  and the owner can always read and write; files are owned by the user who extracts them;
- a member name or link target holding a NUL byte or over ``MAX_LINK_BYTES`` long, or a tar long-name, long-link or
  pax header over ``MAX_TAR_HEADER_BYTES`` (refused by its size, before tarfile reads it), refuses the archive; the
  files written (hard link copies included) inflate to at most ``MAX_RATIO`` (100) times the archive's size,
  beyond ``RATIO_FLOOR`` (1 MiB), as the compressed CSV reader bounds its file
  (:func:`pipekit.data.items.inflate_bounded`): a small archive cannot fill the disk.

Example:
    >>> import io, tarfile, tempfile
    >>> from pathlib import Path
    >>> tmp = Path(tempfile.mkdtemp())
    >>> with tarfile.open(tmp / "a.tar", "w") as t:
    ...     info = tarfile.TarInfo("data/labels.csv"); info.size = 4
    ...     t.addfile(info, io.BytesIO(b"a,b\\n"))
    >>> (extract_archive(tmp / "a.tar", tmp / "out") / "data" / "labels.csv").read_text()
    'a,b\\n'
"""
from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pipekit.core.errors import DataError, warn
from pipekit.data.items import inflate_bounded

TAR_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".tar.bz2", ".tar.xz")
_SHOW = 10  # members named in a message; the rest are counted
#: the longest link target read from a zip archive, which stores it as the entry's content (Linux's PATH_MAX): a
#: "link" entry inflating to 600 MB is read no further
MAX_LINK_BYTES = 4096
#: the longest tar extended header (a GNU long name or long link, a pax header) read: one holds a name and a link
#: target at their longest and the usual records (times, owner, extended attributes) many times over; tarfile reads
#: such a header whole, so a 100 KB gzip archive declaring a 100 MB link target took 1 GB before it was bounded
MAX_TAR_HEADER_BYTES = 1 << 16
#: the characters of a member name shown in a message
_NAME_SHOWN = 200
#: what the error of an archive inflating past its bound says after the cause
_BOMB_ADVICE = ("as no data set does (a zip bomb?); nothing more was extracted: check where the archive came from, "
                "or extract it yourself if you trust it")


@dataclass
class _Member:
    """One archive entry, whatever the archive format."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink", "character device", "block device", "fifo", ...
    mode: int | None  # permission bits as stored (None: the archive has none)
    link: str | None = None
    mtime: float | None = None
    open: Callable[[], IO[bytes] | None] | None = None


_TAR_KINDS = ((tarfile.TarInfo.isreg, "file"), (tarfile.TarInfo.isdir, "dir"),
              (tarfile.TarInfo.issym, "symlink"), (tarfile.TarInfo.islnk, "hardlink"),
              (tarfile.TarInfo.ischr, "character device"), (tarfile.TarInfo.isblk, "block device"),
              (tarfile.TarInfo.isfifo, "fifo"))


#: tar headers whose content (a name, a link target, pax records) tarfile reads whole before the member they describe
_TAR_EXTENDED = {tarfile.GNUTYPE_LONGNAME: "GNU long name", tarfile.GNUTYPE_LONGLINK: "GNU long link",
                 tarfile.XHDTYPE: "pax", tarfile.XGLTYPE: "pax global", tarfile.SOLARIS_XHDTYPE: "Solaris pax"}


class _BoundedTarInfo(tarfile.TarInfo):
    """A tar header that refuses an extended header over ``MAX_TAR_HEADER_BYTES`` by the size its own header gives,
    before tarfile reads that header's content whole (``tarfile.open(..., tarinfo=_BoundedTarInfo)``)."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        kind = _TAR_EXTENDED.get(self.type)
        if kind is not None and self.size > MAX_TAR_HEADER_BYTES:
            archive = os.fsdecode(tar.name) if tar.name else "the tar archive"
            raise DataError(f"{archive}: refusing to extract: the {kind} header at byte "
                            f"{self.offset:,} declares {self.size:,} bytes of names and attributes, over the "
                            f"{MAX_TAR_HEADER_BYTES:,} any file needs. Nothing was extracted; get the archive again "
                            "from its publisher")
        return super()._proc_member(tar)  # type: ignore[misc]


def _shown(text: str | None) -> str:
    """``text`` quoted for a message, cut to ``_NAME_SHOWN`` characters (a name or link target may be 4096 long)."""
    text = text or ""
    if len(text) <= _NAME_SHOWN:
        return repr(text)
    return f"{text[:_NAME_SHOWN]!r}... ({len(text):,} characters)"


def _tar_members(tar: tarfile.TarFile) -> Iterator[_Member]:
    for m in tar.getmembers():
        kind = next((k for test, k in _TAR_KINDS if test(m)), f"tar type {m.type!r}")
        opener: Callable[[], IO[bytes] | None] | None = (lambda m=m: tar.extractfile(m)) if kind == "file" else None
        yield _Member(m.name, kind, stat.S_IMODE(m.mode), m.linkname or None, float(m.mtime), opener)


_ZIP_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFCHR: "character device",
              stat.S_IFBLK: "block device", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}


def _zip_members(z: zipfile.ZipFile) -> Iterator[_Member]:
    for info in z.infolist():
        # Unix zip tools keep st_mode in the top 16 bits of external_attr; others leave it 0
        st_mode = info.external_attr >> 16 if info.create_system == 3 else 0
        if st_mode and stat.S_IFMT(st_mode):
            kind = _ZIP_KINDS.get(stat.S_IFMT(st_mode), f"zip file type {oct(stat.S_IFMT(st_mode))}")
        else:
            kind = "dir" if info.is_dir() else "file"
        mode = stat.S_IMODE(st_mode) if st_mode else None
        link = _zip_link(z, info) if kind == "symlink" else None
        opener = (lambda info=info: z.open(info)) if kind == "file" else None
        yield _Member(info.filename, kind, mode, link, None, opener)


def _zip_link(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """The target of the zip symlink entry ``info``: its content, of which at most ``MAX_LINK_BYTES`` are read; a
    longer one is a DataError naming the archive and the entry."""
    with z.open(info) as f:
        target = f.read(MAX_LINK_BYTES + 1)
    if len(target) > MAX_LINK_BYTES:
        raise DataError(f"{z.filename}: refusing to extract: the symlink entry {info.filename!r} has a target over "
                        f"{MAX_LINK_BYTES} bytes long, as no link has. Nothing was extracted; get the archive again "
                        "from its publisher")
    return target.decode("utf-8", "replace")


def _inside(root: str, target: str) -> bool:
    # the separator matters: /x/data-evil starts with /x/data but is not inside it
    return target == root or target.startswith(root + os.sep)


def _clean_mode(mode: int | None) -> int:
    """The permission bits a data file gets: rwx at most, no group/other write, owner read+write."""
    if mode is None:
        return 0o644
    mode &= 0o755
    if not mode & 0o100:
        mode &= ~0o111
    return mode | 0o600


def _plan(members: list[_Member], root: str) -> tuple[list[tuple[_Member, str, str | None]], list[str], list[str]]:
    """(what to write as (member, target, copy_from), what is skipped, what is refused)."""
    write: list[tuple[_Member, str, str | None]] = []
    skipped: list[str] = []
    refused: list[str] = []
    files: set[str] = set()  # targets of regular files, for hard links
    for m in members:
        target = os.path.realpath(os.path.join(root, m.name))
        if not _inside(root, target):
            refused.append(f"{_shown(m.name)} (its path leads to {_shown(target)})")
            continue
        if m.kind == "symlink":
            to = os.path.realpath(os.path.join(os.path.dirname(os.path.join(root, m.name)), m.link or ""))
            if not _inside(root, to):
                refused.append(f"{_shown(m.name)} (symlink to {_shown(m.link)}, which leads to {_shown(to)})")
            else:
                skipped.append(f"{_shown(m.name)} (symlink to {_shown(m.link)})")
        elif m.kind == "hardlink":
            to = os.path.realpath(os.path.join(root, m.link or ""))
            if not _inside(root, to):
                refused.append(f"{_shown(m.name)} (hard link to {_shown(m.link)}, which leads to {_shown(to)})")
            elif to not in files:
                skipped.append(f"{_shown(m.name)} (hard link to {_shown(m.link)}, which is not a regular file of "
                               "the archive)")
            else:
                write.append((m, target, to))
                files.add(target)
        elif m.kind == "file":
            write.append((m, target, None))
            files.add(target)
        elif m.kind == "dir":
            write.append((m, target, None))
        else:
            skipped.append(f"{_shown(m.name)} ({m.kind})")
    return write, skipped, refused


def _listing(entries: list[str]) -> str:
    more = f" and {len(entries) - _SHOW} more" if len(entries) > _SHOW else ""
    return ", ".join(entries[:_SHOW]) + more


def _write_file(target: str, src: IO[bytes], mode: int, mtime: float | None, archive: Path, where: str,
                written: int) -> int:
    """Write ``src`` to ``target``; ``written``: the bytes the archive's files before it took, the total returned
    (:func:`~pipekit.data.items.inflate_bounded` bounds it)."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.islink(target):  # never write through a link left in the destination
        os.unlink(target)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            written = inflate_bounded(src, f, archive, where, written, _BOMB_ADVICE)
    except DataError:
        os.unlink(target)  # no file cut short at the bound is left looking like the archive's
        raise
    os.chmod(target, mode)
    if mtime is not None:
        os.utime(target, (mtime, mtime))
    return written


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a .tgz/.tar/.tar.bz2/.tar.xz/.zip ``archive`` into ``dest`` with the rules above.

    Raises ValueError naming every member that would reach outside ``dest`` (nothing is written
    then); warns naming what was skipped and the files whose setuid/setgid/sticky bits were cleared.
    """
    archive, dest = Path(archive), Path(dest)
    name = archive.name.lower()
    dest.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest)
    if name.endswith(TAR_SUFFIXES):
        tar = tarfile.open(archive, tarinfo=_BoundedTarInfo)
        handle: tarfile.TarFile | zipfile.ZipFile = tar
        members = list(_tar_members(tar))
    elif name.endswith(".zip"):
        handle = zipfile.ZipFile(archive)
        members = list(_zip_members(handle))
    else:
        raise ValueError(f"{archive}: not an archive pipekit can extract; expected one of "
                         f"{TAR_SUFFIXES + ('.zip',)}")
    with handle:
        nul = [_shown(m.name) for m in members if "\0" in m.name or "\0" in (m.link or "")]
        if nul:
            raise DataError(f"{archive}: refusing to extract: {len(nul)} member(s) hold a NUL byte in their name or "
                            f"link target, as no file's does: {_listing(nul)}. Nothing was extracted; get the "
                            "archive again from its publisher")
        long = [_shown(m.name) for m in members
                if max(len(os.fsencode(m.name)), len(os.fsencode(m.link or ""))) > MAX_LINK_BYTES]
        if long:
            raise DataError(f"{archive}: refusing to extract: {len(long)} member(s) have a name or link target over "
                            f"{MAX_LINK_BYTES} bytes long, as no path has: {_listing(long)}. Nothing was extracted; "
                            "get the archive again from its publisher")
        write, skipped, refused = _plan(members, root)
        if refused:
            raise ValueError(f"{archive}: refusing to extract: {len(refused)} member(s) would reach outside "
                             f"{root}: {_listing(refused)}. Nothing was extracted; a data set archive never "
                             "needs this, so get the archive again from its publisher")
        cleared, written = [], 0
        for m, target, copy_from in write:
            if m.kind == "dir":
                os.makedirs(target, exist_ok=True)
                continue
            if m.mode is not None and m.mode & 0o7000:
                cleared.append(f"{_shown(m.name)} (mode {oct(m.mode)})")
            mode = _clean_mode(m.mode)
            where = f"{archive} ({m.name})"
            if copy_from is not None:
                with open(copy_from, "rb") as src:
                    written = _write_file(target, src, mode, m.mtime, archive, where, written)
            else:
                stream = m.open() if m.open is not None else None
                if stream is None:
                    raise DataError(f"{archive}: member {_shown(m.name)} has no data to extract")
                with stream as src:
                    written = _write_file(target, src, mode, m.mtime, archive, where, written)
    notes = []
    if skipped:
        notes.append(f"skipped {len(skipped)} member(s) that are not regular files or directories: "
                     f"{_listing(skipped)}")
    if cleared:
        notes.append(f"cleared the setuid/setgid/sticky bits of {len(cleared)} file(s): {_listing(cleared)}")
    if notes:
        warn(f"{archive.name}: " + "; ".join(notes) + " (pipekit extracts regular files and directories "
             "only, with plain permissions)")
    return dest
