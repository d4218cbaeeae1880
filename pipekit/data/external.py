"""The dataset registry: find a data set locally, or download, extract and verify it.

Lookup order for ``path(name)``: ``$PIPEKIT_DATA/<name>``, then the user cache
(``$PIPEKIT_CACHE`` or ``~/.cache/pipekit/data``), then a download from the publisher's URL.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipekit.data.archives import TAR_SUFFIXES, extract_archive
from pipekit.data.progress import progress_enabled

FASTAI_S3 = "https://s3.amazonaws.com/fast-ai-"


@dataclass(frozen=True)
class DatasetInfo:
    """Where a data set comes from and which files prove a copy is complete."""

    name: str
    urls: tuple[str, ...]
    files: tuple[str, ...]
    description: str = ""
    sha256: dict[str, str] = field(default_factory=dict)
    #: a function run on the extracted folder (e.g. to cut a sample out of the full download)
    postprocess: Callable[[Path], None] | None = None


def _rossmann_sample(folder: Path) -> None:
    """Keep a seeded random choice of 100 stores of the full Rossmann download, as the sample has."""
    import polars as pl

    train = pl.read_csv(folder / "train.csv", infer_schema_length=10_000)
    stores = np.random.default_rng(0).choice(np.sort(train["Store"].unique().to_numpy()), 100, replace=False)
    keep = pl.Series(stores)
    train.filter(pl.col("Store").is_in(keep)).write_csv(folder / "train.csv")
    store = pl.read_csv(folder / "store.csv", infer_schema_length=10_000)
    store.filter(pl.col("Store").is_in(keep)).write_csv(folder / "store.csv")


_FMNIST = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
REGISTRY: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo("adult_sample", (FASTAI_S3 + "sample/adult_sample.tgz",), ("adult.csv",),
                "UCI Adult census income, 32,561 rows"),
    DatasetInfo("imdb_sample", (FASTAI_S3 + "sample/imdb_sample.tgz",), ("texts.csv",),
                "1,000 IMDB reviews with label and is_valid"),
    DatasetInfo("movie_lens_sample", (FASTAI_S3 + "sample/movie_lens_sample.tgz",), ("ratings.csv",),
                "6,031 MovieLens ratings"),
    DatasetInfo("mnist_tiny", (FASTAI_S3 + "sample/mnist_tiny.tgz",), ("labels.csv", "train", "valid", "test"),
                "MNIST 3s and 7s, 28x28 PNG"),
    DatasetInfo("camvid_tiny", (FASTAI_S3 + "sample/camvid_tiny.tgz",), ("codes.txt", "images", "labels"),
                "100 CamVid road scenes with pixel masks"),
    DatasetInfo("coco_tiny", (FASTAI_S3 + "coco/coco_tiny.tgz",), ("train.json", "train"),
                "200 COCO images with bounding boxes"),
    DatasetInfo("dogscats", (FASTAI_S3 + "imageclas/dogscats.tgz",), ("train", "valid"),
                "Kaggle dogs vs. cats in train/ and valid/ class folders"),
    DatasetInfo("fashion_mnist", tuple(_FMNIST + f for f in (
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")),
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"), "Fashion-MNIST, IDX files"),
    DatasetInfo("rossmann_sample", (FASTAI_S3 + "tabular/rossmann.tgz",), ("train.csv", "store.csv"),
                "Rossmann store sales, a 100-store subset of the full download", postprocess=_rossmann_sample),
]}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add (or replace) a data set in the registry so :func:`path` can find or fetch it."""
    REGISTRY[info.name] = info
    return info


def data_root() -> Path | None:
    v = os.environ.get("PIPEKIT_DATA")
    return Path(v) if v else None


def pipekit_cache_dir(sub: str = "") -> Path:
    """pipekit's cache folder (``$PIPEKIT_CACHE``, default ``~/.cache/pipekit``), or its sub-folder ``sub``.

    Downloads, presized images and token ids all live below it, so one variable moves them all.
    """
    root = Path(os.environ.get("PIPEKIT_CACHE", Path.home() / ".cache" / "pipekit"))
    return root / sub if sub else root


def cache_root() -> Path:
    """Where downloaded data sets go."""
    return pipekit_cache_dir("data")


def is_complete(folder: Path, info: DatasetInfo) -> bool:
    return folder.is_dir() and all((folder / f).exists() for f in info.files)


def locate(name: str) -> Path | None:
    """The local folder of ``name`` if a complete copy exists, else None."""
    info = _info(name)
    for root in (data_root(), cache_root()):
        if root is not None and is_complete(root / name, info):
            return root / name
    return None


def _info(name: str) -> DatasetInfo:
    if name not in REGISTRY:
        raise KeyError(f"unknown data set {name!r}; known: {sorted(REGISTRY)} (add one with register_dataset)")
    return REGISTRY[name]


def path(name: str, download: bool = True) -> Path:
    """The folder holding data set ``name``, downloading it into the user cache if needed.

    >>> (path("adult_sample") / "adult.csv").exists()
    True
    """
    info = _info(name)
    found = locate(name)
    if found is not None:
        return found
    if not download:
        raise FileNotFoundError(f"data set {name!r} is not available locally: set PIPEKIT_DATA to a folder holding "
                                f"{name}/ or call path({name!r}) with download=True")
    return fetch(info)


def available() -> dict[str, Path | None]:
    """Every registered data set and its local folder (None when it would have to be downloaded)."""
    return {name: locate(name) for name in sorted(REGISTRY)}


# ---------------------------------------------------------------------------------------- download
def download_url(url: str, dest: Path, description: str = "") -> Path:
    """Stream ``url`` to ``dest`` with a progress bar (file:// URLs work too)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as f:
        total = int(resp.headers.get("Content-Length") or 0) or None
        if progress_enabled():
            from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

            with Progress("[bold]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()) as bar:
                task = bar.add_task(description or url.rsplit("/", 1)[-1], total=total)
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    bar.advance(task, len(chunk))
        else:
            shutil.copyfileobj(resp, f, 1 << 20)
    tmp.replace(dest)
    return dest


def sha256_of(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def extract(archive: Path, dest: Path) -> Path:
    """Extract a .tgz/.tar/.zip into ``dest`` with the rules of :func:`~pipekit.data.archives.extract_archive`
    (regular files and directories only, nothing outside ``dest``); a .gz file is copied as is."""
    dest.mkdir(parents=True, exist_ok=True)
    if archive.name.lower().endswith(TAR_SUFFIXES + (".zip",)):
        return extract_archive(archive, dest)
    shutil.copy2(archive, dest / archive.name)
    return dest


def fetch(info: DatasetInfo, root: Path | None = None) -> Path:
    """Download every URL of ``info``, verify checksums, extract, verify the files, install into the cache."""
    root = root or cache_root()
    final = root / info.name
    with tempfile.TemporaryDirectory(dir=_ensure(root)) as tmpd:
        tmp = Path(tmpd)
        staging = tmp / "extract"
        for url in info.urls:
            fname = url.rsplit("/", 1)[-1]
            try:
                archive = download_url(url, tmp / fname, f"{info.name}: {fname}")
            except OSError as e:
                raise ConnectionError(f"could not download {info.name} from {url}: {e}. Download it by hand and "
                                      f"put it in $PIPEKIT_DATA/{info.name}/") from e
            want = info.sha256.get(fname)
            if want and sha256_of(archive) != want:
                raise ValueError(f"{fname}: checksum mismatch (expected {want}); the download is corrupt, try again")
            extract(archive, staging)
        folder = _content_root(staging, info)
        if info.postprocess is not None:
            info.postprocess(folder)
        if not is_complete(folder, info):
            missing = [f for f in info.files if not (folder / f).exists()]
            raise ValueError(f"{info.name}: the download lacks {missing}; the publisher's layout may have changed")
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(folder), str(final))
    return final


def _ensure(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _content_root(staging: Path, info: DatasetInfo) -> Path:
    """Archives usually hold one top folder; find the folder that has the expected files."""
    if is_complete(staging, info):
        return staging
    for sub in sorted(staging.iterdir()):
        if sub.is_dir() and is_complete(sub, info):
            return sub
    entries = list(staging.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return staging


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
    arr = np.frombuffer(data, dtype=_IDX_DTYPES[dtype_code], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{file}: header says shape {shape} but holds {arr.size} values; the file is truncated")
    return arr.reshape(shape).astype(np.dtype(_IDX_DTYPES[dtype_code]).newbyteorder("="), copy=False)
