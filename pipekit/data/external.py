"""The dataset registry: find a data set locally, or download, extract and verify it.

Lookup order for ``path(name)``: ``$PIPEKIT_DATA/<name>``, then the user cache
(``$PIPEKIT_CACHE`` or ``~/.cache/pipekit/data``), then a download from the publisher's https URL, checked
against its pinned size and checksum before anything is extracted.

A folder in ``$PIPEKIT_DATA`` is used as it is: the user chose it. A folder in the cache (which may be shared with
other users) is used only when it and everything in it (link targets too) is owned by this user or by root
(:func:`untrusted_reason`). :func:`fetch` makes what it extracts writable by its owner only, whatever the umask; a copy
extracted or copied there by the user passes too. A folder of the user's that holds another user's file is never
deleted: it is moved aside to ``<name>.refused-<YYYYmmdd-HHMMSS>`` and the data set downloaded and verified again, or,
when it cannot be downloaded, refused with an :class:`~pipekit.core.errors.UntrustedDataError` saying why and how to
fix it. Ownership is what is checked: a file the user made writable by their group, or a cache folder others can write
into, still lets others change a data set (one ``PIPEKIT_CACHE`` per user avoids both).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import struct
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipekit.data.extract import TAR_SUFFIXES, extract_archive
from pipekit.data.getters import DataPath
from pipekit.data.progress import progress_bar
from pipekit.core.errors import DatasetUnavailableError, ParameterError, UnknownNameError, UntrustedDataError, warn
from pipekit.core.validate import close_names, env_folder, unknown_names

FASTAI_S3 = "https://s3.amazonaws.com/fast-ai-"
#: fastai's ``checks.txt`` lists, per archive, its size and the md5 of its first MiB (not of the whole file)
FASTAI_MD5_BYTES = 1 << 20


@dataclass(frozen=True)
class Checksum:
    """What a downloaded file must be: its size in bytes and the digests its publisher lists.

    ``md5_bytes`` says the md5 covers only the file's first ``md5_bytes`` bytes (fastai publishes the md5
    of the first MiB of each archive); None means the whole file. ``sha256`` always covers the whole file.

    >>> Checksum(5148, md5="bb300cfdad3c16e7a12a480ee83cd310").size
    5148
    """

    size: int
    md5: str | None = None
    sha256: str | None = None
    md5_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"Checksum: size must be >= 0 bytes, got {self.size}")
        if self.md5 is None and self.sha256 is None:
            raise ValueError("Checksum: give md5 or sha256 (or both) as well as the size")
        for algo, value, n in (("md5", self.md5, 32), ("sha256", self.sha256, 64)):
            if value is not None and (len(value) != n or any(c not in "0123456789abcdef" for c in value)):
                raise ValueError(f"Checksum: {algo} must be {n} lower-case hex digits, got {value!r}")

    def describe(self) -> str:
        md5 = "md5" if self.md5_bytes is None else f"md5 of the first {self.md5_bytes} bytes"
        parts = [f"{self.size} bytes"] + ([f"{md5} {self.md5}"] if self.md5 else []) + (
            [f"sha256 {self.sha256}"] if self.sha256 else [])
        return ", ".join(parts)


@dataclass(frozen=True)
class DatasetInfo:
    """Where a data set comes from and which files prove a copy is complete.

    ``checksums`` maps each URL to the :class:`Checksum` its download must match; a download that does
    not match is deleted before anything is extracted.

    >>> import pipekit.datasets as D
    >>> info = D.REGISTRY["mnist_tiny"]
    >>> info.files, info.description, info.urls[0].rsplit("/", 1)[-1], info.checksums[info.urls[0]].size
    (('labels.csv', 'train', 'valid', 'test'), 'MNIST 3s and 7s, 28x28 PNG', 'mnist_tiny.tgz', 342207)
    """

    name: str
    urls: tuple[str, ...]
    files: tuple[str, ...]
    description: str = ""
    checksums: dict[str, Checksum] = field(default_factory=dict)
    #: a function run on the extracted folder (e.g. to cut a sample out of the full download)
    postprocess: Callable[[Path], None] | None = None

    def __post_init__(self) -> None:
        check_dataset_name(self.name, "DatasetInfo")


def check_dataset_name(name: Any, who: str) -> str:
    """``name`` when it can name a data set's folder: one plain path part, which ``<data folder>/<name>`` keeps inside
    the data folder. A ``/``, an absolute path, ``""``, ``"."`` or ``".."`` is refused with a
    :class:`~pipekit.core.errors.ParameterError` (a ValueError) naming it.

    >>> check_dataset_name("my_notes", "register_dataset")
    'my_notes'
    >>> check_dataset_name("../escaped", "register_dataset")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: register_dataset: the data set name '../escaped' is not one plain folder name ...
    """
    if not isinstance(name, str) or not name or name in (".", "..") or name != Path(name).name:
        raise ParameterError(f"{who}: the data set name {name!r} is not one plain folder name (it must not be '', '.' or "
                             "'..', nor hold a '/' or be an absolute path, as it names the folder <data folder>/<name>); "
                             "give a name such as 'my_notes'")
    return name


def _rossmann_sample(folder: Path) -> None:
    """Keep a seeded random choice of 100 stores of the full Rossmann download, as the sample has."""
    import polars as pl

    train = pl.read_csv(folder / "train.csv", infer_schema_length=10_000, glob=False)
    stores = np.random.default_rng(0).choice(np.sort(train["Store"].unique().to_numpy()), 100, replace=False)
    keep = pl.Series(stores)
    train.filter(pl.col("Store").is_in(keep)).write_csv(folder / "train.csv")
    store = pl.read_csv(folder / "store.csv", infer_schema_length=10_000, glob=False)
    store.filter(pl.col("Store").is_in(keep)).write_csv(folder / "store.csv")


def _fastai(path: str, size: int, md5: str) -> dict[str, Any]:
    """``urls`` and ``checksums`` of a fastai archive, with the size and md5 fastai's ``checks.txt`` lists."""
    url = FASTAI_S3 + path
    md5_bytes = FASTAI_MD5_BYTES if size > FASTAI_MD5_BYTES else None
    return {"urls": (url,), "checksums": {url: Checksum(size, md5=md5, md5_bytes=md5_bytes)}}


# The publisher's bucket over https (its website address serves plain http only). Sizes and md5 are the
# ones in the Fashion-MNIST README. The Debian package dataset-fashion-mnist ships the same compressed
# bytes with the gzip header's file name and time stripped; putting them back gives files whose md5 are
# these published ones, which is how the sha256 below were computed.
_FMNIST = "https://fashion-mnist.s3.eu-central-1.amazonaws.com/"
_FMNIST_FILES = {
    "train-images-idx3-ubyte.gz": Checksum(26421880, md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                           sha256="3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    "train-labels-idx1-ubyte.gz": Checksum(29515, md5="25c81989df183df01b3e8a0aad5dffbe",
                                           sha256="a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    "t10k-images-idx3-ubyte.gz": Checksum(4422102, md5="bef4ecab320f06d8554ea6380940ec79",
                                          sha256="346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    "t10k-labels-idx1-ubyte.gz": Checksum(5148, md5="bb300cfdad3c16e7a12a480ee83cd310",
                                          sha256="67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
}

REGISTRY: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo("adult_sample", **_fastai("sample/adult_sample.tgz", 968212, "64eb9d7e23732de0b138f7372d15492f"),
                files=("adult.csv",), description="UCI Adult census income, 32,561 rows"),
    DatasetInfo("imdb_sample", **_fastai("sample/imdb_sample.tgz", 571827, "0842e61a9867caa2e6fbdb14fa703d61"),
                files=("texts.csv",), description="1,000 IMDB reviews with label and is_valid"),
    DatasetInfo("movie_lens_sample",
                **_fastai("sample/movie_lens_sample.tgz", 51790, "10961384dfe7c5181460390a460c1f77"),
                files=("ratings.csv",), description="6,031 MovieLens ratings"),
    DatasetInfo("mnist_tiny", **_fastai("sample/mnist_tiny.tgz", 342207, "56143e8f24db90d925d82a5a74141875"),
                files=("labels.csv", "train", "valid", "test"), description="MNIST 3s and 7s, 28x28 PNG"),
    DatasetInfo("camvid_tiny", **_fastai("sample/camvid_tiny.tgz", 2314212, "2cf6daf91b7a2083ecfa3e9968e9d915"),
                files=("codes.txt", "images", "labels"), description="100 CamVid road scenes with pixel masks"),
    DatasetInfo("coco_tiny", **_fastai("coco/coco_tiny.tgz", 801038, "367467451ac4fba79a647753c2c66d3a"),
                files=("train.json", "train"), description="200 COCO images with bounding boxes"),
    DatasetInfo("dogscats", **_fastai("sample/dogscats.tgz", 839285364, "3e483c8d6ef2175e9d395a6027eb92b7"),
                files=("train", "valid"), description="Kaggle dogs vs. cats in train/ and valid/ class folders"),
    DatasetInfo("fashion_mnist", tuple(_FMNIST + f for f in _FMNIST_FILES), tuple(_FMNIST_FILES),
                "Fashion-MNIST, IDX files", checksums={_FMNIST + f: c for f, c in _FMNIST_FILES.items()}),
    # No publisher lists a checksum for the Rossmann archive, so pipekit does not download it: put the
    # competition's train.csv and store.csv in $PIPEKIT_DATA/rossmann_sample/, or fetch() a copy you pinned.
    DatasetInfo("rossmann_sample", (), ("train.csv", "store.csv"),
                "Rossmann store sales, a 100-store subset of the full download", postprocess=_rossmann_sample),
]}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add (or replace) a data set in the registry so :func:`path` can find or fetch it.

    >>> import io, tarfile, tempfile
    >>> from pathlib import Path
    >>> from pipekit.data.external import Checksum, DatasetInfo, file_digests
    >>> tmp = Path(tempfile.mkdtemp())
    >>> with tarfile.open(tmp / "notes.tgz", "w:gz") as tar:  # a data set's archive, made here (nothing is downloaded)
    ...     member = tarfile.TarInfo("notes/readme.txt"); member.size = 5
    ...     tar.addfile(member, io.BytesIO(b"hello"))
    >>> url = (tmp / "notes.tgz").as_uri()
    >>> size, _, sha256 = file_digests(tmp / "notes.tgz")
    >>> import os
    >>> from unittest import mock
    >>> import pipekit.datasets as D
    >>> from pipekit.data.external import REGISTRY, register_dataset
    >>> _ = register_dataset(DatasetInfo("my_notes", (url,), ("readme.txt",), "my notes",
    ...                                  checksums={url: Checksum(size, sha256=sha256)}))
    >>> with mock.patch.dict(os.environ, {"PIPEKIT_CACHE": str(tmp / "cache")}):
    ...     folder = D.path("my_notes")  # fetched from its address into the cache, verified first
    >>> folder.relative_to(tmp).as_posix(), (folder / "readme.txt").read_text()
    ('cache/data/my_notes', 'hello')
    >>> del REGISTRY["my_notes"]  # this example's data set is forgotten again

    A name must be one plain folder name (:func:`check_dataset_name`): ``"../notes"`` or ``"/home/me/notes"`` is
    refused here, before anything is downloaded or moved.
    """
    REGISTRY[check_dataset_name(info.name, "register_dataset")] = info
    return info


def _home() -> Path | None:
    """This user's home folder (``$HOME``, else the user database's), or None when there is none (HOME unset and a
    user id with no entry, as a container run under an arbitrary user id has)."""
    home = Path(os.path.expanduser("~"))
    return home if home.is_absolute() else None


def data_root() -> Path | None:
    """The folder ``$PIPEKIT_DATA`` names, where :func:`path` looks for a data set first (``<it>/<name>``), or None
    when it is not set. ``~`` is expanded; a relative folder is refused with a ParameterError, as ``PIPEKIT_CACHE``'s
    is (see :func:`pipekit_cache_dir`).

    >>> import os
    >>> from unittest import mock
    >>> from pipekit.data.external import data_root
    >>> with mock.patch.dict(os.environ, {"PIPEKIT_DATA": "/srv/datasets"}):
    ...     data_root().as_posix()
    '/srv/datasets'
    >>> with mock.patch.dict(os.environ, {"PIPEKIT_DATA": ""}):
    ...     data_root() is None
    True
    """
    return env_folder("PIPEKIT_DATA", "to look in pipekit's cache only")


def pipekit_cache_dir(sub: str = "") -> Path:
    """pipekit's cache folder (``$PIPEKIT_CACHE``, default ``~/.cache/pipekit``), or its sub-folder ``sub``.

    Downloads, presized images and token ids all live below it, so one variable moves them all. An empty
    ``PIPEKIT_CACHE`` (what ``export PIPEKIT_CACHE=$UNSET`` gives) means unset; ``~`` is expanded; a relative folder
    is refused with a ParameterError, as it would follow the working folder (and ``pipekit cache clear`` with it), and
    so is an unset one where this user has no home folder, naming PIPEKIT_CACHE as the way out.
    """
    root = env_folder("PIPEKIT_CACHE", "for ~/.cache/pipekit")
    if root is None:
        home = _home()
        if home is None:
            raise ParameterError("PIPEKIT_CACHE is not set and this user has no home folder (HOME is not set and the "
                                 "user database has no entry for this user) for the default cache ~/.cache/pipekit: "
                                 "set PIPEKIT_CACHE to an absolute folder of your own (for example "
                                 "PIPEKIT_CACHE=/tmp/pipekit-cache), or set HOME")
        root = home / ".cache" / "pipekit"
    return root / sub if sub else root


def cache_root() -> Path:
    """Where downloaded data sets go.

    >>> import os
    >>> from unittest import mock
    >>> from pipekit.data.external import cache_root
    >>> with mock.patch.dict(os.environ, {"PIPEKIT_CACHE": "/scratch/pipekit"}):
    ...     cache_root().as_posix()
    '/scratch/pipekit/data'
    """
    return pipekit_cache_dir("data")


def is_complete(folder: Path, info: DatasetInfo) -> bool:
    return folder.is_dir() and all((folder / f).exists() for f in info.files)


#: Cache folders this process found trusted, by (path, inode, modification time in ns, owner) of the folder itself:
#: nothing in such a folder can be changed by another user, so a folder that is still the same is not walked again.
_TRUSTED: set[tuple[str, int, int, int]] = set()
_TRUSTED_LOCK = threading.Lock()
_WRITE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def _user(uid: int) -> str:
    """``uid N = name`` (or ``uid N`` when no user has that number here), for a message."""
    try:
        import pwd

        return f"uid {uid} = {pwd.getpwuid(uid).pw_name}"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _entry_reason(shown: str, st: os.stat_result, me: int) -> str | None:
    """Why one entry (``st``, its lstat or a link's target's stat) makes its data set folder untrusted, or None:
    it is another user's. (Write permission is not asked: a umask of 002 makes the user's own exports, logs and older
    downloads writable by their group; pipekit's downloads are made writable by their owner only.)"""
    if st.st_uid not in (me, 0):
        return f"{shown} is owned by {_user(st.st_uid)}, not by this user ({_user(me)}) or root"
    return None


def _folder_reason(folder: str, shown: str, me: int, seen: set[str]) -> str | None:
    """Why the folder ``folder`` (shown as ``shown``) or anything in it is untrusted (see :func:`untrusted_reason`),
    links not followed but checked; None when all of it is trusted."""
    real = os.path.realpath(folder)
    if real in seen:  # a link back into what is being walked
        return None
    seen.add(real)

    def failed(e: OSError) -> None:
        raise e

    for top, dirs, files in os.walk(folder, onerror=failed):
        for name in dirs + files:
            entry = os.path.join(top, name)
            rel = os.path.relpath(entry, folder)
            reason = _check(entry, rel if shown == "." else os.path.join(shown, rel), me, seen)
            if reason is not None:
                return reason
    return None


def _check(entry: str, shown: str, me: int, seen: set[str]) -> str | None:
    """Why ``entry`` (itself, and where it is a link, what it points to) is untrusted, or None."""
    st = os.lstat(entry)
    reason = _entry_reason(shown, st, me)
    if reason is not None or not stat.S_ISLNK(st.st_mode):
        return reason
    target = os.path.realpath(entry)
    try:
        tst = os.stat(entry)
    except OSError as e:
        return f"{shown} is a link to {target}, which cannot be read ({e.strerror or e})"
    # what a link points to is held to the rule of the link's place, inside the folder or outside it
    reason = _entry_reason(f"{shown} (a link to {target})", tst, me)
    if reason is None and stat.S_ISDIR(tst.st_mode):
        reason = _folder_reason(target, f"{shown} (a link to {target})", me, seen)
    return reason


def untrusted_reason(folder: Path) -> str | None:
    """Why the cache folder ``folder`` cannot be trusted, naming the first entry that makes it so; None when it can.

    Trusted is what no other user wrote: the folder and everything in it (links not followed, but what a link points
    to held to the same rule) is owned by this user or by root. :func:`fetch` makes what it extracts writable by its
    owner only, so others cannot change it either; a file the user made writable by their group (a umask of 002) can
    be changed by that group, and a cache folder others can write into lets them swap a folder after it was checked:
    give each user a ``PIPEKIT_CACHE`` of their own. A folder found trusted is not walked again in this process while
    it is the same folder, unchanged. Where the system has no user ids (Windows), a folder is trusted.
    """
    if not hasattr(os, "geteuid"):
        return None
    me = os.geteuid()
    try:
        st = os.lstat(folder)
        key = (os.fspath(folder), st.st_ino, st.st_mtime_ns, st.st_uid)
        with _TRUSTED_LOCK:
            if key in _TRUSTED:
                return None
        reason = _entry_reason("the folder", st, me)
        if reason is None and stat.S_ISLNK(st.st_mode):  # a link the user made: what it points to is the folder
            reason = _entry_reason(f"the folder (a link to {os.path.realpath(folder)})", os.stat(folder), me)
        if reason is None:
            reason = _folder_reason(os.fspath(folder), ".", me, set())
    except OSError as e:
        return f"{e.filename or folder} cannot be read ({e.strerror or e})"
    if reason is None:
        with _TRUSTED_LOCK:
            _TRUSTED.add(key)
        _forget_manifest(folder)
    return reason


def _forget_manifest(folder: Path) -> None:
    """Remove the ``<name>.manifest.json`` an earlier pipekit kept beside a cache folder: nothing reads it."""
    old = folder.with_name(folder.name + ".manifest.json")
    try:
        if old.is_symlink() or old.is_file():
            old.unlink()
    except OSError:
        pass


def untrusted_copy(info: DatasetInfo) -> tuple[Path, str] | None:
    """The complete copy of ``info`` in the cache that :func:`locate` passes over, and why (see
    :func:`untrusted_reason`); None when there is none."""
    folder = cache_root() / info.name
    if not is_complete(folder, info):
        return None
    reason = untrusted_reason(folder)
    return None if reason is None else (folder, reason)


def untrusted_message(folder: Path, reason: str) -> str:
    """What is said of a cache folder :func:`locate` does not use: the folder, why, and the ways out."""
    return (f"the cache folder {folder} is not used: {reason}, so another user could have written its files. Set "
            "PIPEKIT_CACHE to a folder of your own (a cache shared between users lets them swap each other's data "
            f"sets), move {folder} away to download the data set again and verify it, or set PIPEKIT_DATA to a "
            "folder of data sets you trust")


def _others(folder: Path) -> bool:
    """Whether the cache folder ``folder`` itself is another user's (not this user's or root's): theirs to keep, never
    moved aside (it may be in use by their runs)."""
    try:
        return hasattr(os, "geteuid") and os.lstat(folder).st_uid not in (os.geteuid(), 0)
    except OSError:
        return False


def set_aside(folder: Path, why: str) -> Path:
    """Rename ``folder`` to ``<name>.refused-<YYYYmmdd-HHMMSS>`` beside it, deleting nothing (a ``models/``
    checkpoint in it stays there), and return where it went; an :class:`UntrustedDataError` naming it when it
    cannot be renamed."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder.with_name(f"{folder.name}.refused-{stamp}")
    n = 1
    while os.path.lexists(aside):
        aside, n = folder.with_name(f"{folder.name}.refused-{stamp}-{n}"), n + 1
    try:
        os.rename(folder, aside)
    except OSError as e:
        raise UntrustedDataError(f"{folder} is not used ({why}) and cannot be moved aside to {aside} to make room for "
                                 f"the verified download ({e.strerror or e}): move it away or delete it yourself, or "
                                 "set PIPEKIT_DATA to a folder of data sets you trust") from e
    return aside


def locate(name: str) -> Path | None:
    """The local folder of ``name`` if a complete copy exists (in the cache, one no other user can have written or
    changed: see :func:`untrusted_reason`), else None.

    >>> import pipekit.datasets as D
    >>> from pipekit.data.external import locate
    >>> folder = D.path("mnist_tiny")  # downloaded once if it is not here yet
    >>> locate("mnist_tiny") == folder, sorted(p.name for p in folder.iterdir())
    (True, ['labels.csv', 'test', 'train', 'valid'])
    >>> try:
    ...     locate("no_such_set")
    ... except KeyError as e:
    ...     print(str(e)[:35])
    unknown data set 'no_such_set'; the
    """
    info = _info(name)
    root = data_root()
    if root is not None and is_complete(root / name, info):
        return root / name
    folder = cache_root() / name
    if is_complete(folder, info) and untrusted_reason(folder) is None:
        return folder
    return None


def _info(name: str) -> DatasetInfo:
    if name not in REGISTRY:  # a KeyError still, printed as a sentence, with the closest name first
        known = sorted(REGISTRY)
        raise UnknownNameError(f"unknown data set {name!r}; {unknown_names([name], known, 'known data sets', len(known))}"
                               " (add one with register_dataset)")
    return REGISTRY[name]


def incomplete_copies(info: DatasetInfo) -> list[tuple[Path, list[str]]]:
    """The folders named ``info.name`` under ``$PIPEKIT_DATA`` and the cache that lack some of its files, each with
    the files it lacks: a copy :func:`locate` passes over. Where the cache has no folder (PIPEKIT_CACHE is not set
    and this user has no home folder) nothing there is incomplete."""
    out = []
    cache = cache_root() if os.environ.get("PIPEKIT_CACHE") or _home() is not None else None
    for root in (data_root(), cache):
        folder = None if root is None else root / info.name
        if folder is not None and folder.is_dir() and not is_complete(folder, info):
            out.append((folder, [f for f in info.files if not (folder / f).exists()]))
    return out


def where_looked(info: DatasetInfo) -> str:
    """Where pipekit looked for a local copy of ``info``, for a message: ``$PIPEKIT_DATA`` (or that it is not set)
    and the cache, what each held, and how a copy is put in place by hand."""
    root, cache, name = data_root(), cache_root(), info.name
    lacks = {folder: missing for folder, missing in incomplete_copies(info)}

    untrusted = untrusted_copy(info)

    def said(folder: Path) -> str:
        if folder in lacks:
            return f"{folder} is there but lacks {lacks[folder]}"
        if untrusted is not None and folder == untrusted[0]:
            return untrusted_message(*untrusted)
        return f"{folder} is {'not a folder' if folder.exists() else 'missing'}"

    parts = ["PIPEKIT_DATA is not set" if root is None else f"$PIPEKIT_DATA/{name}: {said(root / name)}",
             f"the cache: {said(cache / name)}"]
    if root is not None and (root.name == name or is_complete(root, info)):
        parts.append(f"PIPEKIT_DATA ({root}) looks like the data set's own folder: set it to the folder above it")
    archive = any(u.lower().endswith(TAR_SUFFIXES + (".zip",)) for u in info.urls)
    urls = " and ".join(info.urls)
    how = f"download {urls} and extract it there" if archive else f"download {urls} into it" if urls else \
        "put the data set's files in it"
    where = "$PIPEKIT_DATA" if root is not None else "a folder you choose (then set PIPEKIT_DATA to that folder)"
    fix = f"To use a copy of your own, make a folder {name}/ in {where}: {how}, so that {name}/ holds {list(info.files)}"
    return f"pipekit looked for a local copy: {'; '.join(parts)}. {fix}"


def path(name: str, download: bool = True) -> DataPath:
    """The folder holding data set ``name``, downloading it into the user cache if needed; a
    :class:`~pipekit.data.getters.DataPath`, so ``path(name).ls()`` lists it. A folder of that name that lacks
    some of the data set's files is passed over with a warning saying which, or named in the error when no
    complete copy is found. A copy in the cache that another user could have changed (see :func:`untrusted_reason`)
    is moved aside and downloaded again, or refused with an :class:`~pipekit.core.errors.UntrustedDataError`.

    >>> (path("adult_sample") / "adult.csv").exists()
    True
    """
    info = _info(name)
    found = locate(name)
    untrusted = untrusted_copy(info) if found is None else None
    if untrusted is not None and _others(untrusted[0]):  # another user's folder in a shared cache: left as it is
        raise UntrustedDataError(f"data set {name!r}: {untrusted_message(*untrusted)}")
    if found is None and not download:
        if untrusted is not None:
            raise UntrustedDataError(f"data set {name!r}: {untrusted_message(*untrusted)}; or call path({name!r}) "
                                     "with download=True to move it aside and download the data set again")
        raise DatasetUnavailableError(f"data set {name!r} is not available locally. {where_looked(info)}; or call "
                                f"path({name!r}) with download=True")
    lacking = incomplete_copies(info)
    try:
        folder = found if found is not None else fetch(info)  # moves an untrusted copy aside, deleting nothing
    except DatasetUnavailableError as e:
        if untrusted is None or isinstance(e, UntrustedDataError):
            raise
        raise UntrustedDataError(f"data set {name!r} cannot be downloaded again: {e}") from e
    for other, missing in lacking:
        if other != folder:
            warn(f"{other} lacks {missing} of data set {name!r}, so it was passed over for {folder}; complete it "
                 "(extract the archive again) or remove it")
    return DataPath(folder)


#: the names the fastai book gives the registered data sets (``URLs.ADULT_SAMPLE``...), by data set
_BOOK_NAMES = {"ADULT_SAMPLE": "adult_sample", "IMDB_SAMPLE": "imdb_sample", "ML_SAMPLE": "movie_lens_sample",
               "MNIST_TINY": "mnist_tiny", "CAMVID_TINY": "camvid_tiny", "COCO_TINY": "coco_tiny",
               "DOGS": "dogscats"}


class _URLs:
    """The book's ``URLs.<NAME>`` constants for the data sets pipekit knows: each is the data set's download
    address, which :func:`untar_data` turns into its local folder.

    >>> URLs.ADULT_SAMPLE
    'https://s3.amazonaws.com/fast-ai-sample/adult_sample.tgz'
    >>> untar_data(URLs.ADULT_SAMPLE).name
    'adult_sample'
    """

    def __getattr__(self, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in _BOOK_NAMES:
            known = ", ".join(f"URLs.{k} ({v})" for k, v in _BOOK_NAMES.items())
            others = sorted(set(REGISTRY) - set(_BOOK_NAMES.values()))
            also = f"; the other registered data sets are {', '.join(others)}, by name: untar_data({others[0]!r})" \
                if others else ""
            book, by_name = close_names(name, _BOOK_NAMES, n=1), close_names(name, others, n=1)
            meant = f" (did you mean URLs.{book[0]}?)" if book else \
                f" (did you mean untar_data({by_name[0]!r})?)" if by_name else ""
            raise AttributeError(f"pipekit has no data set registered as URLs.{name}{meant}; it knows {known}{also}. For "
                                 "another data set, put its files in a folder and pass that folder to the loaders, or "
                                 "add it with register_dataset(DatasetInfo(name, urls, files, checksums=...)) and use "
                                 "pipekit.datasets.path(name)")
        urls = _info(_BOOK_NAMES[name]).urls
        return urls[0] if urls else _BOOK_NAMES[name]

    @staticmethod
    def path(url: str) -> DataPath:
        """The folder a data set named ``url`` lives in, or would (the book's ``URLs.path('bluebook')``, which a
        download is then put in): a registered data set's local copy if there is one, else the folder of that name in
        ``$PIPEKIT_DATA``, or in pipekit's data cache when PIPEKIT_DATA is not set. ``url`` is a name, or an address
        whose last part (its file name, without ``.tgz``/``.zip``...) names it. Nothing is created or downloaded.

        >>> from pipekit.data.external import path
        >>> URLs.path("adult_sample") == path("adult_sample")
        True
        """
        url = os.fspath(url)
        name = next((i.name for i in REGISTRY.values() if url in i.urls), _named(url))
        check_dataset_name(name, f"URLs.path({url!r})")
        found = locate(name) if name in REGISTRY else None
        root = data_root()
        return DataPath(found if found is not None else (root if root is not None else cache_root()) / name)

    def __dir__(self) -> list[str]:
        return sorted(_BOOK_NAMES)

    def __repr__(self) -> str:
        return f"URLs({', '.join(sorted(_BOOK_NAMES))})"


URLs = _URLs()


def _named(url: str) -> str:
    """The data set name an address gives: its last part without ``.tgz``/``.zip``... (a name is kept as it is).

    >>> _named("https://example.org/data/pets.tgz"), _named("mnist_tiny")
    ('pets', 'mnist_tiny')
    """
    name = url.rstrip("/").rsplit("/", 1)[-1]
    for suffix in TAR_SUFFIXES + (".zip",):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return name


def untar_data(url: str, download: bool = True) -> DataPath:
    """The local folder of the data set downloaded from ``url`` (a ``URLs.<NAME>``, any registered data set's
    address, or its name), as the book's first line gives it: :func:`path` of that data set.

    >>> (untar_data(URLs.MNIST_TINY) / "labels.csv").exists()
    True
    """
    url = os.fspath(url)
    if url in REGISTRY:
        return path(url, download=download)
    for info in REGISTRY.values():
        if url in info.urls:
            return path(info.name, download=download)
    known = sorted(REGISTRY)
    raise ValueError(f"untar_data: no registered data set comes from {url!r}; "
                     f"{unknown_names([_named(url)], known, 'registered data sets', len(known))}. "
                     "Pass a folder holding the files to the loaders, or register the address first: "
                     "register_dataset(DatasetInfo(name, urls=(url,), files=(...), checksums={url: Checksum(size, "
                     "sha256=...)}))")


def available() -> dict[str, Path | None]:
    """Every registered data set and its local folder (None when it would have to be downloaded).

    >>> import pipekit.datasets as D
    >>> from pipekit.data.external import available
    >>> folder = D.path("mnist_tiny")  # downloaded once if it is not here yet
    >>> found = available()
    >>> found["mnist_tiny"] == folder, "fashion_mnist" in found, "dogscats" in found
    (True, True, True)
    """
    return {name: locate(name) for name in sorted(REGISTRY)}


# ---------------------------------------------------------------------------------------- download
def download_url(url: str, dest: Path, description: str = "", checksum: Checksum | None = None) -> Path:
    """Stream ``url`` to ``dest`` with a progress bar (file:// URLs work too), then verify it.

    With a ``checksum`` the download stops as soon as it grows past the pinned size, and a file that
    does not match (see :func:`verify_file`) is deleted and reported with a ValueError.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    limit = None if checksum is None else checksum.size
    written = 0
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0) or None
            chunks = iter(lambda: resp.read(1 << 20), b"")
            name = description or url.rsplit("/", 1)[-1]
            for chunk in progress_bar(chunks, total, name, leave=True, unit="bytes"):
                f.write(chunk)
                written += len(chunk)
                if limit is not None and written > limit:
                    break  # no need to fetch the rest of a file that is already too long
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if checksum is not None and written > checksum.size:
        tmp.unlink()
        raise ValueError(f"{url}: checksum mismatch: size: expected {checksum.size} bytes, got more than "
                         f"{checksum.size} (the download was stopped and deleted); pinned: {checksum.describe()}")
    if checksum is not None:
        verify_file(tmp, checksum, url)
    tmp.replace(dest)
    return dest


def file_digests(file: Path, md5_bytes: int | None = None) -> tuple[int, str, str]:
    """``(size, md5, sha256)`` of ``file`` in one read; the md5 covers the first ``md5_bytes`` bytes if given."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    size = 0
    with open(file, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            if md5_bytes is None:
                md5.update(chunk)
            elif size < md5_bytes:
                md5.update(chunk[:md5_bytes - size])
            size += len(chunk)
    return size, md5.hexdigest(), sha.hexdigest()


def verify_file(file: Path, checksum: Checksum, url: str) -> None:
    """Check ``file`` (downloaded from ``url``) against ``checksum``; on a mismatch delete it and raise
    a ValueError naming the URL and each expected and actual value."""
    size, md5, sha = file_digests(file, checksum.md5_bytes)
    wrong = []
    if size != checksum.size:
        wrong.append(f"size: expected {checksum.size} bytes, got {size}")
    if checksum.md5 is not None and md5 != checksum.md5:
        what = "md5" if checksum.md5_bytes is None else f"md5 of the first {checksum.md5_bytes} bytes"
        wrong.append(f"{what}: expected {checksum.md5}, got {md5}")
    if checksum.sha256 is not None and sha != checksum.sha256:
        wrong.append(f"sha256: expected {checksum.sha256}, got {sha}")
    if wrong:
        file.unlink()
        raise ValueError(f"{url}: checksum mismatch: {'; '.join(wrong)}. The download was deleted; try again, "
                         "and if it fails again the file at that address is not the one its publisher listed")


def extract(archive: Path, dest: Path) -> Path:
    """Extract a .tgz/.tar/.zip into ``dest`` with the rules of :func:`~pipekit.data.extract.extract_archive`
    (regular files and directories only, nothing outside ``dest``); a .gz file is copied as is.

    >>> import tempfile, zipfile
    >>> from pathlib import Path
    >>> from pipekit.data.external import extract
    >>> tmp = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(tmp / "notes.zip", "w") as z:
    ...     z.writestr("notes/readme.txt", "hello"); z.writestr("notes/2024/log.txt", "ok")
    >>> folder = extract(tmp / "notes.zip", tmp / "out")
    >>> sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.txt"))
    ['notes/2024/log.txt', 'notes/readme.txt']
    """
    dest.mkdir(parents=True, exist_ok=True)
    if archive.name.lower().endswith(TAR_SUFFIXES + (".zip",)):
        return extract_archive(archive, dest)
    shutil.copy2(archive, dest / archive.name)
    return dest


def fetch(info: DatasetInfo, root: Path | None = None) -> Path:
    """Download every URL of ``info``, verify each against its pinned checksum, extract, check the files,
    take away the group's and others' write permission from everything extracted (so no other user can change it,
    whatever the umask: see :func:`untrusted_reason`), and install the folder into the cache.

    A folder already there is never deleted: one that is complete and trusted (another process's download) is kept
    and this download dropped; any other (incomplete, or untrusted) is moved aside (:func:`set_aside`) with a warning
    saying where and why, and the verified download put in its place.

    A URL without a pinned checksum is downloaded only over https or from a local file, with a warning
    giving its size and sha256 to pin; a plain-http URL needs a checksum, as anyone on the way can alter it.

    >>> import io, tarfile, tempfile
    >>> from pathlib import Path
    >>> from pipekit.data.external import Checksum, DatasetInfo, file_digests
    >>> tmp = Path(tempfile.mkdtemp())
    >>> with tarfile.open(tmp / "notes.tgz", "w:gz") as tar:  # a data set's archive, made here (nothing is downloaded)
    ...     member = tarfile.TarInfo("notes/readme.txt"); member.size = 5
    ...     tar.addfile(member, io.BytesIO(b"hello"))
    >>> url = (tmp / "notes.tgz").as_uri()
    >>> size, _, sha256 = file_digests(tmp / "notes.tgz")
    >>> from pipekit.data.external import fetch
    >>> info = DatasetInfo("notes", (url,), ("readme.txt",), checksums={url: Checksum(size, sha256=sha256)})
    >>> folder = fetch(info, root=tmp / "cache")  # the archive's top folder becomes root/<name>
    >>> folder.relative_to(tmp).as_posix(), [p.name for p in folder.iterdir()]
    ('cache/notes', ['readme.txt'])
    >>> bad = DatasetInfo("notes2", (url,), ("readme.txt",), checksums={url: Checksum(size, sha256="0" * 64)})
    >>> try:
    ...     fetch(bad, root=tmp / "cache")
    ... except ValueError as e:
    ...     print("checksum mismatch" in str(e), (tmp / "cache" / "notes2").exists())
    True False
    """
    root = root or cache_root()
    if not info.urls:
        raise DatasetUnavailableError(f"data set {info.name!r} is not available locally and has no download with a "
                                f"published checksum. {where_looked(info)}; or register it with a URL and a Checksum "
                                "you trust")
    for url in info.urls:
        if url not in info.checksums and not url.startswith(("https://", "file:")):
            raise ValueError(f"{info.name}: {url} is neither https nor pinned by a checksum; use an https address "
                             f"or give DatasetInfo(checksums={{{url!r}: Checksum(size, sha256=...)}})")
    final = root / info.name
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmpd:
        tmp = Path(tmpd)
        staging = tmp / "extract"
        for url in info.urls:
            fname = url.rsplit("/", 1)[-1]
            checksum = info.checksums.get(url)
            try:
                archive = download_url(url, tmp / fname, f"{info.name}: {fname}", checksum=checksum)
            except OSError as e:
                raise DatasetUnavailableError(f"could not download {info.name} from {url}: {e}. "
                                              f"{where_looked(info)}") from e
            if checksum is None:
                size, _, sha = file_digests(archive)
                warn(f"{info.name}: {url} has no pinned checksum, so the download was not verified; it is "
                     f"{size} bytes with sha256 {sha}: once you trust it, pin it with "
                     f"checksums={{{url!r}: Checksum({size}, sha256={sha!r})}}")
            extract(archive, staging)
        folder = _content_root(staging, info)
        if info.postprocess is not None:
            info.postprocess(folder)
        if not is_complete(folder, info):
            missing = [f for f in info.files if not (folder / f).exists()]
            raise ValueError(f"{info.name}: the download lacks {missing}; the publisher's layout may have changed")
        _deny_writes_by_others(folder)
        if os.path.lexists(final):
            if final.is_dir() and not final.is_symlink() and is_complete(final, info) and untrusted_reason(final) is None:
                return final  # put there meanwhile by another process of this user's
            if _others(final):  # another user's (complete or not): theirs, never moved from under their runs
                raise UntrustedDataError(untrusted_message(final, untrusted_reason(final) or "it is another user's"))
            why = "it is not a folder" if not final.is_dir() else \
                f"it lacks {[f for f in info.files if not (final / f).exists()]}" if not is_complete(final, info) \
                else untrusted_reason(final) or "it changed while the data set was downloaded"
            aside = set_aside(final, why)
            warn(f"data set {info.name!r}: the cache folder {final} was not used ({why}), so it was moved to {aside}, "
                 "nothing in it deleted (a checkpoint learn.save wrote in its models/ is there); the verified download "
                 "is in its place. Delete the old folder once you have taken what you need from it")
        shutil.move(str(folder), str(final))
    # known trusted from now on in this process (and an old manifest beside it removed); a file system that keeps no
    # owners would refuse it at the next look, and download it again each time: said now
    still = untrusted_reason(final)
    if still is not None:
        raise UntrustedDataError(f"data set {info.name!r} was downloaded into {final}, but it does not read back as "
                                 f"this user's ({still}): the file system of the cache keeps no owners. Set "
                                 "PIPEKIT_CACHE to a folder on a local file system")
    return final


def _deny_writes_by_others(folder: Path) -> None:
    """``chmod -R go-w folder``, links left alone: what pipekit extracted can be changed by this user only."""
    for top, _, files in os.walk(folder):
        for entry in [top] + [os.path.join(top, f) for f in files]:
            st = os.lstat(entry)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & _WRITE_BY_OTHERS:
                os.chmod(entry, stat.S_IMODE(st.st_mode) & ~_WRITE_BY_OTHERS)


def _content_root(staging: Path, info: DatasetInfo) -> Path:
    """Archives usually hold one top folder; find the folder that has the expected files."""
    if is_complete(staging, info):
        return staging
    for sub in sorted(staging.iterdir()):
        if sub.is_dir() and is_complete(sub, info):
            return sub
    entries = list(staging.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else staging


# ---------------------------------------------------------------------------------------- IDX files
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(file: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST/Fashion-MNIST format), gzipped or not, into a NumPy array.

    >>> read_idx(path("fashion_mnist") / "t10k-labels-idx1-ubyte.gz").shape
    (10000,)
    """
    file = Path(file)
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError(f"{file}: too short to be an IDX file")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _IDX_DTYPES:
        raise ValueError(f"{file}: not an IDX file (bad magic number)")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[dtype_code])  # type: ignore[call-overload]
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{file}: header says shape {shape} but holds {arr.size} values; the file is truncated")
    return arr.reshape(shape).astype(dtype.newbyteorder("="), copy=False)
