"""Presized images in an on-disk, memory-mapped uint8 cache, and the Store batches are gathered from.

Each file is decoded and presized once. The result is written to a ``.npy`` pack of shape
(N, H, W, C) that later epochs and later runs memory-map: a batch is one ``np.take`` (no decoding,
no Python per image). Entries are keyed by a hash of the file's bytes plus the presize settings, so
a changed file is decoded again while unchanged files are copied from the previous pack.

The cache lives in ``$PIPEKIT_CACHE`` (default ``~/.cache/pipekit``); ``cache_dir=False`` keeps the
pixels in memory instead.

Example:
    >>> store = build_image_store(files, Resize(64), mode="RGB")     # doctest: +SKIP
    >>> store.gather(np.array([0, 5])).shape                          # doctest: +SKIP
    torch.Size([2, 64, 64, 3])
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from pipekit.data.external import pipekit_cache_dir
from pipekit.data.progress import progress_bar
from pipekit.data.store import Store
from pipekit.vision.buffers import pooled_empty
from pipekit.vision.decode import ImageDecodeError, decode_bytes, decode_image
from pipekit.vision.presize import ItemTransform

CACHE_VERSION = "pk-img-1"
T = TypeVar("T")


def default_cache_dir() -> Path:
    """$PIPEKIT_CACHE or ~/.cache/pipekit."""
    return pipekit_cache_dir()


def clear_image_cache(cache_dir: str | os.PathLike | None = None) -> None:
    """Delete every cached presized image under ``cache_dir`` (default: the standard cache)."""
    d = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    shutil.rmtree(d / "images", ignore_errors=True)


def _default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: file not found; check the path or the getter that produced it") from None
    except OSError as e:
        raise ImageDecodeError(f"{path}: cannot be read ({e.strerror or e})") from None


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _content_key(path: str) -> str:
    return _hash(_read_bytes(path))


def _map_in_chunks(ex: ThreadPoolExecutor, fn: Callable[[int], T], n: int, chunk: int = 32) -> Iterator[T]:
    """``fn(0..n-1)`` in order, submitted ``chunk`` items per task: one future per file costs the calling
    thread ~60 us of GIL-holding bookkeeping, which competes with the workers (ThreadPoolExecutor.map
    ignores its chunksize)."""
    def run(lo: int) -> list[T]:
        return [fn(i) for i in range(lo, min(lo + chunk, n))]

    for part in ex.map(run, range(0, n, chunk)):
        yield from part


def _atomic_write_json(path: Path, obj: object) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


class ImageStore(Store):
    """Presized uint8 images (N, H, W, C), in memory or memory-mapped; ``gather`` gives an NHWC uint8 batch.

    Masks are stored with ``squeeze=True`` and gathered as (B, H, W).
    Attributes: ``orig_sizes`` (N, 2) source (height, width); ``n_decoded_`` and ``n_reused_`` from the
    build (how many files were decoded vs. found in the cache); ``path_`` the pack file or None.
    """

    def __init__(self, pixels: np.ndarray, orig_sizes: np.ndarray, squeeze: bool = False,
                 n_decoded: int = 0, n_reused: int = 0, path: Path | None = None):
        if pixels.ndim != 4 or pixels.dtype != np.uint8:
            raise ValueError(f"ImageStore needs a uint8 (N, H, W, C) array, got {pixels.dtype} {pixels.shape}")
        self.pixels = pixels
        self.orig_sizes = np.asarray(orig_sizes, dtype=np.int64).reshape(-1, 2)
        self.squeeze = squeeze
        self.n_decoded_ = n_decoded
        self.n_reused_ = n_reused
        self.path_ = path

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

    def item(self, i: int) -> torch.Tensor:
        return self.gather(np.asarray([i], dtype=np.int64))[0]

    def subset(self, idx: np.ndarray) -> ImageStore:
        idx = np.asarray(idx, dtype=np.int64)
        return ImageStore(self.pixels[idx], self.orig_sizes[idx], self.squeeze)

    def __repr__(self) -> str:
        where = f", cache={self.path_}" if self.path_ else ""
        return f"ImageStore(n={len(self)}, size={self.size}, channels={self.pixels.shape[3]}{where})"


def _decode_one(path: str, mode: str, tfm: ItemTransform | None,
                data: bytes | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    img = decode_image(path, mode=mode) if data is None else decode_bytes(data, mode=mode, name=str(Path(path)))
    hw = (img.shape[0], img.shape[1])
    if tfm is not None:
        img = tfm.apply(img, nearest=(mode == "mask"))
    return img, hw


def build_image_store(paths: Sequence[str | os.PathLike], tfm: ItemTransform | None = None, mode: str = "RGB",
                      cache_dir: str | os.PathLike | bool | None = None, num_workers: int | None = None,
                      description: str = "presizing images") -> ImageStore:
    """Decode and presize ``paths`` once (threads), reusing the on-disk cache when it is valid.

    ``tfm`` is the item transform (``Resize``, ``CropPad``, ``RandomResizedCrop``) or None when all
    images already share one size. ``cache_dir``: None for the default cache, a folder, or False for
    memory only.
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("no image files to load: the item list is empty; check get_items and the folder")
    if tfm is not None and not isinstance(tfm, ItemTransform):
        raise TypeError(f"tfm must be an image item transform (Resize, CropPad, RandomResizedCrop), got {tfm!r}")
    workers = num_workers or _default_workers()
    channels = 3 if mode == "RGB" else 1
    squeeze = mode == "mask"
    config = f"{CACHE_VERSION}|{mode}|{tfm.cache_key() if tfm is not None else 'none'}"

    if cache_dir is False:
        return _build_in_memory(paths, tfm, mode, channels, squeeze, workers, description)

    root = (default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)) / "images"
    cdir = root / hashlib.blake2b(config.encode(), digest_size=8).hexdigest()
    cdir.mkdir(parents=True, exist_ok=True)
    index_path = cdir / "index.json"
    try:
        index: dict[str, list] = json.loads(index_path.read_text()) if index_path.exists() else {}
    except (OSError, json.JSONDecodeError):
        index = {}
    # A cold cache (nothing indexed, no pack) cannot hold any of these files: each file is then read once,
    # hashed and decoded from the same bytes, instead of a hashing pass followed by a decoding pass.
    cold = not index and not any(cdir.glob("*.npy"))
    keys: list[str] = [""] * len(paths)
    if not cold:
        with ThreadPoolExecutor(workers) as ex:
            keys = list(_map_in_chunks(ex, lambda i: _content_key(paths[i]), len(paths)))
    pack_id = hashlib.blake2b(("\n".join(keys) + config).encode(), digest_size=12).hexdigest()
    pack, meta = cdir / f"{pack_id}.npy", cdir / f"{pack_id}.json"
    if not cold and pack.exists() and meta.exists():
        try:
            pixels = np.load(pack, mmap_mode="r")
            sizes = np.asarray(json.loads(meta.read_text())["orig_sizes"], dtype=np.int64)
            if pixels.shape[0] == len(paths) and pixels.shape[3] == channels and len(sizes) == len(paths):
                return ImageStore(pixels, sizes, squeeze, n_decoded=0, n_reused=len(paths), path=pack)
        except (ValueError, OSError, KeyError, json.JSONDecodeError):
            pass  # a damaged pack is rebuilt below

    old_packs: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def old_entry(key: str) -> tuple[np.ndarray, tuple[int, int]] | None:
        ref = index.get(key)
        if ref is None:
            return None
        pid, slot = ref
        if pid not in old_packs:
            try:
                old_packs[pid] = (np.load(cdir / f"{pid}.npy", mmap_mode="r"),
                                  np.asarray(json.loads((cdir / f"{pid}.json").read_text())["orig_sizes"]))
            except (OSError, ValueError, KeyError, json.JSONDecodeError):
                return None
        arr, sizes = old_packs[pid]
        if slot >= len(arr) or arr.shape[3] != channels:
            return None
        return np.asarray(arr[slot]), (int(sizes[slot][0]), int(sizes[slot][1]))

    # The output shape: the transform's size, or the first image's own size.
    first = None if cold else old_entry(keys[0])
    first_img = first[0] if first is not None else _decode_one(paths[0], mode, tfm)[0]
    h, w = first_img.shape[:2]
    # The pack's name depends on every key, which a cold build only knows at the end.
    tmp = cdir / f"{pack_id}.{os.getpid()}.{threading.get_ident()}.tmp.npy"
    header = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), h, w, channels))
    data_offset, item_bytes = header.offset, h * w * channels
    del header
    # Workers write with pwrite: the kernel copies into the page cache, with none of the page faults that
    # filling a writable mapping costs (2-3x faster here).
    fd = os.open(tmp, os.O_WRONLY)
    sizes = np.zeros((len(paths), 2), dtype=np.int64)
    # Load the old packs in this thread so the workers only read them.
    if not cold:
        for k in set(keys):
            old_entry(k)

    def fill(i: int) -> bool:
        if cold:
            data = _read_bytes(paths[i])
            keys[i] = _hash(data)
            entry = None
        else:
            data, entry = None, old_entry(keys[i])
        decoded = entry is None
        img, hw = _decode_one(paths[i], mode, tfm, data) if decoded else entry
        if img.shape[:2] != (h, w):
            raise ValueError(f"{paths[i]}: image is {img.shape[1]}x{img.shape[0]} but {paths[0]} is {w}x{h}; "
                             "images of different sizes need an item transform such as Resize(224)")
        os.pwrite(fd, np.ascontiguousarray(img).data, data_offset + i * item_bytes)
        sizes[i] = hw
        return decoded

    try:
        try:
            with ThreadPoolExecutor(workers) as ex:
                flags = list(progress_bar(_map_in_chunks(ex, fill, len(paths)), total=len(paths),
                                          description=description))
        finally:
            os.close(fd)
        if cold:
            pack_id = hashlib.blake2b(("\n".join(keys) + config).encode(), digest_size=12).hexdigest()
            pack, meta = cdir / f"{pack_id}.npy", cdir / f"{pack_id}.json"
        # No fsync: the pages reach the disk in the background, and readers see them through the page cache.
        os.replace(tmp, pack)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _atomic_write_json(meta, {"orig_sizes": sizes.tolist(), "config": config})
    for slot, k in enumerate(keys):
        index[k] = [pack_id, slot]
    _atomic_write_json(index_path, index)
    # Packs no longer referenced by any key are garbage (a mapped file stays readable after unlink).
    live = {ref[0] for ref in index.values()}
    for f in cdir.glob("*.npy"):
        if f.stem not in live and ".tmp" not in f.name:
            f.unlink(missing_ok=True)
            f.with_suffix(".json").unlink(missing_ok=True)
    n_decoded = int(sum(flags))
    return ImageStore(np.load(pack, mmap_mode="r"), sizes, squeeze, n_decoded=n_decoded,
                      n_reused=len(paths) - n_decoded, path=pack)


def _build_in_memory(paths: list[str], tfm: ItemTransform | None, mode: str, channels: int, squeeze: bool,
                     workers: int, description: str) -> ImageStore:
    first, _ = _decode_one(paths[0], mode, tfm)
    h, w = first.shape[:2]
    pixels = np.empty((len(paths), h, w, channels), dtype=np.uint8)
    sizes = np.zeros((len(paths), 2), dtype=np.int64)

    def fill(i: int) -> None:
        img, hw = _decode_one(paths[i], mode, tfm)
        if img.shape[:2] != (h, w):
            raise ValueError(f"{paths[i]}: image is {img.shape[1]}x{img.shape[0]} but {paths[0]} is {w}x{h}; "
                             "images of different sizes need an item transform such as Resize(224)")
        pixels[i] = img
        sizes[i] = hw

    with ThreadPoolExecutor(workers) as ex:
        for _ in progress_bar(_map_in_chunks(ex, fill, len(paths)), total=len(paths), description=description):
            pass
    return ImageStore(pixels, sizes, squeeze, n_decoded=len(paths), n_reused=0)


def images_from_bytes(blobs: Sequence[bytes], tfm: ItemTransform | None = None, mode: str = "RGB") -> ImageStore:
    """An in-memory store from encoded image bytes (e.g. a Parquet/HF column of PNG/JPEG blobs)."""
    imgs, sizes = [], []
    for i, b in enumerate(blobs):
        img = decode_bytes(b, mode=mode, name=f"item {i}")
        sizes.append(img.shape[:2])
        imgs.append(tfm.apply(img, nearest=(mode == "mask")) if tfm is not None else img)
    shapes = {im.shape for im in imgs}
    if len(shapes) != 1:
        raise ValueError(f"images have different shapes {sorted(shapes)[:4]}; give an item transform such as Resize")
    return ImageStore(np.stack(imgs), np.asarray(sizes), squeeze=(mode == "mask"), n_decoded=len(imgs))
