"""Recycled batch buffers.

A fresh 40 MB float batch costs ~10,000 page faults on every allocation (large blocks are mmap'd and
returned to the OS on free), which on a small machine is as slow as the augmentation itself. Fresh
buffers are plain anonymous mappings (see ``pooled_empty``). Batch
buffers are therefore taken from a small pool and given back automatically when the array (and
every tensor made from it) is garbage collected.

Example:
    >>> a = pooled_empty((2, 3), np.float32)
    >>> a.shape, a.dtype
    ((2, 3), dtype('float32'))
"""
from __future__ import annotations

import mmap
import threading
import weakref
from collections import defaultdict

import numpy as np

_MIN_BYTES = 1 << 20  # small arrays come cheaply from malloc
_KEEP = 8  # buffers kept per shape: batches in flight plus the one being trained on
_lock = threading.Lock()
_free: dict[tuple, list[np.ndarray]] = defaultdict(list)


def _release(key: tuple, buf: np.ndarray) -> None:
    with _lock:
        if len(_free[key]) < _KEEP:
            _free[key].append(buf)


def pooled_empty(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised array like ``np.empty``, backed by a recycled buffer when it is large."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes < _MIN_BYTES:
        return np.empty(shape, dtype)
    key = (tuple(shape), dtype.str)
    with _lock:
        buf = _free[key].pop() if _free[key] else None
    if buf is None:
        # An anonymous mapping of its own, not np.empty: numpy asks the kernel for transparent huge pages on
        # large arrays, and where the kernel then compacts memory at fault time (THP defrag "madvise", a
        # page cache filling the memory) the first touch of a fresh 40 MB batch took ~350 ms against ~40 ms
        # with plain pages, a cost every buffer of the first epoch paid.
        buf = np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape)
    view = buf.view()  # the view is what callers hold; the buffer returns when the view dies
    weakref.finalize(view, _release, key, buf)
    return view
