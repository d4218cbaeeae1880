"""Crafted data set archives: extraction writes regular files and directories only, inside the destination.

Every archive is built here, byte by byte where tarfile/zipfile would not write the attack themselves.
The tests run as root on the CI machines, so a device node that is not refused really gets created.
"""
import doctest
import io
import os
import stat
import tarfile
import zipfile

import pytest

import pipekit.data.extract as archives
from pipekit.data.external import extract

CONTENT = b"label,value\n3,1\n"


def _add(t: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
         link: str = "", dev: tuple[int, int] = (0, 0)) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    info.devmajor, info.devminor = dev
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _tar(path, *entries, gz: bool = True):
    with tarfile.open(path, "w:gz" if gz else "w") as t:
        _add(t, "toy/labels.csv", data=CONTENT)
        for e in entries:
            _add(t, **e)
    return path


def _zip(path, *entries):
    """entries: (name, st_mode, content); st_mode goes where Unix zip tools keep it."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("toy/labels.csv", CONTENT)
        for name, st_mode, data in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = st_mode << 16
            z.writestr(info, data)
    return path


def _special_files(root):
    """Every entry under root that is not a plain regular file or directory, or carries high mode bits."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) or st.st_mode & 0o7000:
                bad.append((os.path.relpath(p, root), oct(st.st_mode)))
    return bad


def test_tar_device_nodes_fifo_and_setuid_are_not_installed(tmp_path):
    arc = _tar(tmp_path / "evil.tgz",
               dict(name="toy/dev/null0", kind=tarfile.CHRTYPE, dev=(1, 3), mode=0o666),
               dict(name="toy/dev/loop0", kind=tarfile.BLKTYPE, dev=(7, 0), mode=0o660),
               dict(name="toy/pipe", kind=tarfile.FIFOTYPE, mode=0o644),
               dict(name="toy/run.sh", data=b"#!/bin/sh\n", mode=0o4755),
               dict(name="toy/shared", kind=tarfile.DIRTYPE, mode=0o3777))
    out = tmp_path / "out"
    with pytest.warns(UserWarning) as rec:
        extract(arc, out)
    msg = " ".join(str(w.message) for w in rec)
    assert _special_files(out) == []
    assert not os.path.lexists(out / "toy/dev/null0") and not os.path.lexists(out / "toy/dev/loop0")
    assert not os.path.lexists(out / "toy/pipe")
    assert (out / "toy/labels.csv").read_bytes() == CONTENT
    run = os.stat(out / "toy/run.sh")
    assert stat.S_ISREG(run.st_mode) and stat.S_IMODE(run.st_mode) == 0o755  # rwx kept, setuid dropped
    assert stat.S_IMODE(os.stat(out / "toy/shared").st_mode) & 0o7000 == 0
    for what in ["'toy/dev/null0' (character device)", "'toy/dev/loop0' (block device)", "'toy/pipe' (fifo)",
                 "skipped 3 member(s)", "'toy/run.sh' (mode 0o4755)"]:
        assert what in msg


@pytest.mark.parametrize("entry, why", [
    (dict(name="toy/escape", kind=tarfile.SYMTYPE, link="../../../etc"), "symlink to '../../../etc'"),
    (dict(name="toy/abs", kind=tarfile.SYMTYPE, link="/etc/passwd"), "symlink to '/etc/passwd'"),
    (dict(name="toy/hard", kind=tarfile.LNKTYPE, link="../outside.txt"), "hard link to '../outside.txt'"),
    (dict(name="../escaped.txt", data=b"x"), "'../escaped.txt'"),
    (dict(name="/tmp/absolute.txt", data=b"x"), "'/tmp/absolute.txt'"),
    (dict(name="toy/../../out-evil/f.txt", data=b"x"), "out-evil"),  # a sibling sharing the prefix "out"
])
def test_tar_members_reaching_outside_refuse_the_archive(tmp_path, entry, why):
    (tmp_path / "outside.txt").write_text("keep")
    arc = _tar(tmp_path / "evil.tgz", entry)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="refusing to extract") as e:
        extract(arc, out)
    assert why in str(e.value) and "outside" in str(e.value) and "evil.tgz" in str(e.value)
    assert list(out.iterdir()) == []  # nothing written, not even the good members
    assert not (tmp_path / "out-evil").exists() and not (tmp_path / "escaped.txt").exists()
    assert (tmp_path / "outside.txt").read_text() == "keep"


def test_tar_links_inside_the_folder(tmp_path):
    """A symlink is skipped and reported (never created); a hard link to an archive file becomes a copy."""
    arc = _tar(tmp_path / "links.tar",
               dict(name="toy/alias.csv", kind=tarfile.SYMTYPE, link="labels.csv"),
               dict(name="toy/copy.csv", kind=tarfile.LNKTYPE, link="toy/labels.csv"),
               dict(name="toy/dangling", kind=tarfile.LNKTYPE, link="toy/missing"), gz=False)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="skipped 2 member") as rec:
        extract(arc, out)
    msg = str(rec[0].message)
    assert "'toy/alias.csv' (symlink to 'labels.csv')" in msg and "'toy/dangling' (hard link" in msg
    assert not os.path.lexists(out / "toy/alias.csv")
    assert (out / "toy/copy.csv").read_bytes() == CONTENT and _special_files(out) == []


def test_extract_does_not_write_through_a_link_already_in_the_destination(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", out / "toy")
    with pytest.raises(ValueError, match="refusing to extract"):
        extract(_tar(tmp_path / "a.tgz"), out)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_zip_special_entries_are_skipped_and_modes_cleaned(tmp_path):
    arc = _zip(tmp_path / "evil.zip",
               ("toy/dev/null0", stat.S_IFCHR | 0o666, b""),
               ("toy/dev/loop0", stat.S_IFBLK | 0o660, b""),
               ("toy/pipe", stat.S_IFIFO | 0o644, b""),
               ("toy/alias.csv", stat.S_IFLNK | 0o777, b"labels.csv"),
               ("toy/run.sh", stat.S_IFREG | 0o6755, b"#!/bin/sh\n"))
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="skipped 4 member") as rec:
        extract(arc, out)
    msg = str(rec[0].message)
    for what in ["(character device)", "(block device)", "(fifo)", "'toy/alias.csv' (symlink to 'labels.csv')",
                 "'toy/run.sh' (mode 0o6755)"]:
        assert what in msg
    # zipfile alone would have written the symlink as a text file holding "labels.csv"
    assert not os.path.lexists(out / "toy/alias.csv") and not os.path.lexists(out / "toy/pipe")
    assert _special_files(out) == [] and stat.S_IMODE(os.stat(out / "toy/run.sh").st_mode) == 0o755
    assert (out / "toy/labels.csv").read_bytes() == CONTENT


@pytest.mark.parametrize("name, st_mode, data, why", [
    ("toy/escape", stat.S_IFLNK | 0o777, b"../../etc", "symlink to '../../etc'"),
    ("toy/abs", stat.S_IFLNK | 0o777, b"/etc/passwd", "symlink to '/etc/passwd'"),
    ("../escaped.txt", stat.S_IFREG | 0o644, b"x", "'../escaped.txt'"),
    ("../out-evil/f.txt", stat.S_IFREG | 0o644, b"x", "out-evil"),  # a sibling sharing the prefix "out"
])
def test_zip_members_reaching_outside_refuse_the_archive(tmp_path, name, st_mode, data, why):
    arc = _zip(tmp_path / "evil.zip", (name, st_mode, data))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="refusing to extract") as e:
        extract(arc, out)
    assert why in str(e.value) and "outside" in str(e.value)
    assert list(out.iterdir()) == [] and not (tmp_path / "out-evil").exists()


def test_plain_archives_extract_without_a_warning(tmp_path, recwarn):
    out = tmp_path / "out"
    extract(_tar(tmp_path / "a.tgz", dict(name="toy/train/3.png", data=b"png")), out)
    extract(_zip(tmp_path / "a.zip", ("toy/train/7.png", stat.S_IFREG | 0o644, b"png")), out)
    assert (out / "toy/train/3.png").read_bytes() == b"png" and (out / "toy/train/7.png").read_bytes() == b"png"
    assert [str(w.message) for w in recwarn] == []


def test_archives_docstring_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert doctest.testmod(archives).failed == 0
