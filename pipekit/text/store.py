"""Token ids of a text column as one Arrow ``list<int32>`` array, and its on-disk cache.

A batch is gathered from the flat id buffer in one vectorised step (padding first, to the batch's
longest text); the language-model loader slices the same buffer into streams. The cache stores the
array as an Arrow IPC file that is memory-mapped back, keyed by a hash of the texts and every setting
that changes the ids, so re-running a recipe does not tokenize again.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import torch

from pipekit.data.external import pipekit_cache_dir
from pipekit.data.store import Store
from pipekit.text.tokenize import ragged_positions

CACHE_VERSION = "pk-text-1"


class TextStore(Store):
    """Texts as token ids (an Arrow ``list<int32>`` array); ``gather`` pads to the longest, pad first.

    >>> s = TextStore(pa.array([[2, 5, 6], [2, 7]], pa.list_(pa.int32())), pad_idx=1)
    >>> s.gather(np.array([0, 1])).tolist()
    [[2, 5, 6], [1, 2, 7]]
    """

    def __init__(self, ids: pa.ListArray | pa.ChunkedArray, pad_idx: int = 1, max_len: int | None = None):
        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks()
        if not (pa.types.is_list(ids.type) or pa.types.is_large_list(ids.type)):
            raise TypeError(f"TextStore needs an Arrow list<int32> array, got {ids.type}")
        self.ids = ids
        offsets = np.asarray(ids.offsets, dtype=np.int64)
        self.offsets = offsets - offsets[0]
        values = ids.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
        self.flat = values.to_numpy(zero_copy_only=False)  # int32, zero-copy over the (memory-mapped) buffer
        self.lengths = np.diff(self.offsets)
        self.pad_idx = int(pad_idx)
        self.max_len = max_len

    def __len__(self) -> int:
        return len(self.lengths)

    def gather(self, idx: np.ndarray) -> torch.Tensor:
        idx = np.asarray(idx, dtype=np.int64)
        lens = self.lengths[idx]
        starts = self.offsets[idx]
        if self.max_len is not None:
            # keep the end of very long texts: the classifier reads them left to right, the end matters most
            cut = np.maximum(lens - self.max_len, 0)
            starts, lens = starts + cut, lens - cut
        width = max(int(lens.max()) if len(lens) else 0, 1)
        out = np.full((len(idx), width), self.pad_idx, dtype=np.int64)
        rows = np.repeat(np.arange(len(idx)), lens)
        cols = ragged_positions(width - lens, lens)
        out[rows, cols] = self.flat[ragged_positions(starts, lens)]
        return torch.from_numpy(out)

    def item(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.flat[self.offsets[i]:self.offsets[i + 1]].astype(np.int64))

    def subset(self, idx: np.ndarray) -> TextStore:
        return TextStore(self.ids.take(pa.array(np.asarray(idx, dtype=np.int64))), self.pad_idx, self.max_len)

    def stream(self, idx: np.ndarray) -> np.ndarray:
        """The ids of the texts at ``idx`` concatenated in that order (for language-model streams)."""
        return self.flat[ragged_positions(self.offsets[idx], self.lengths[idx])]

    def __repr__(self) -> str:
        return f"TextStore(n={len(self)}, tokens={int(self.lengths.sum())}, pad_idx={self.pad_idx})"


# ---------------------------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    """$PIPEKIT_CACHE/text or ~/.cache/pipekit/text."""
    return pipekit_cache_dir("text")


def cache_key(texts: pl.Series, settings: dict[str, Any], train_idx: np.ndarray | None) -> str:
    """Hash of the texts' bytes (Arrow buffers, no copy), the settings and the training rows."""
    h = hashlib.blake2b(digest_size=16)
    h.update(CACHE_VERSION.encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    arr = texts.cast(pl.String).to_arrow()
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    h.update(str(len(arr)).encode())
    for buf in arr.buffers():
        if buf is not None:
            h.update(memoryview(buf))
    if train_idx is not None:
        h.update(np.ascontiguousarray(train_idx, dtype=np.int64).tobytes())
    return h.hexdigest()


def save_cached(folder: Path, ids: pa.ListArray, meta: dict[str, Any]) -> None:
    """Write ids (Arrow IPC) and meta (JSON) atomically: readers never see a half-written entry."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".ids.{os.getpid()}.arrow"
    table = pa.table({"ids": ids})
    with pa.OSFile(str(tmp), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)
    tmp_meta = folder / f".meta.{os.getpid()}.json"
    tmp_meta.write_text(json.dumps(meta))
    os.replace(tmp, folder / "ids.arrow")
    os.replace(tmp_meta, folder / "meta.json")


def load_cached(folder: Path) -> tuple[pa.ListArray, dict[str, Any]] | None:
    """The cached ids (memory-mapped) and meta, or None when absent or unreadable."""
    ids_path, meta_path = folder / "ids.arrow", folder / "meta.json"
    if not (ids_path.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        table = pa.ipc.open_file(pa.memory_map(str(ids_path), "r")).read_all()
        return table.column("ids").combine_chunks(), meta
    except (OSError, ValueError, pa.ArrowInvalid, KeyError):
        return None  # a corrupt entry is rebuilt, never trusted
