"""Token ids of a text column as one Arrow ``list<int32>`` array, and its on-disk cache of tokens.

A batch is gathered from the flat id buffer in one vectorised step (padding first, to the batch's
longest text); the language-model loader slices the same buffer into streams. The cache stores the
tokens of a column (ids into the column's own list of distinct tokens) as an Arrow IPC file that is
memory-mapped back, keyed by a hash of the texts and the block's settings, so re-running a recipe
does not tokenize again, whatever its split: the vocabulary, learned on the training rows, is counted
again at each build from the cached tokens (0.02 s for imdb_sample's 1,000 reviews, against 0.5 s to
tokenize them). An entry lists the content key of each of its texts, so a rebuild after editing, adding or deleting
a few texts deletes the entry it replaces, while two recipes over most of the same texts (a language model on every
row, a classifier on the labelled ones) each keep their own entry (see :func:`_drop_superseded`).
"""
from __future__ import annotations

import contextlib
import json
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import torch

from pipekit.core.errors import DataError, ParameterError
from pipekit.data.cache import (CACHE_LAYOUTS, STREAM_RECORD, superseded, TEMP_SUFFIX, CacheEntryError,
                                ChecksumWriter, TempFile, atomic_write_json, cache_folder, clean_stale_temps,
                                fingerprint, link_target, read_json, remove_cache_folder, open_verified, remove_link,
                                warn_rebuild, warn_unwritable)
from pipekit.data.store import Store
from pipekit.text.tokenize import TokenizedTexts, ragged_positions

# bumped whenever the tokens of a text change (4: character references such as &eacute; are unescaped; 5: a
# subword model without the rules is trained on and applied to whitespace-separated chunks of the raw text; 6: the
# tokenizer state an entry keeps says which, units_, so an entry without it is not read as a model of words)
CACHE_VERSION = "pk-text-6"
#: what an entry holds, part of its key: each text's tokens as ids into the entry's own list of distinct tokens (a
#: :class:`~pipekit.text.tokenize.TokenizedTexts`), not ids of a vocabulary learned on the training rows
ENTRY_LAYOUT = "tokens"


class TextStore(Store):
    """Texts as token ids (an Arrow ``list<int32>`` array); ``gather`` pads to the longest, pad first.

    >>> import pyarrow as pa
    >>> s = TextStore(pa.array([[2, 5, 6], [2, 7]], pa.list_(pa.int32())), pad_idx=1)
    >>> s.gather(np.array([0, 1])).tolist()
    [[2, 5, 6], [1, 2, 7]]
    """

    def __init__(self, ids: pa.ListArray | pa.ChunkedArray, pad_idx: int = 1, max_len: int | None = None):
        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks()
        if not (pa.types.is_list(ids.type) or pa.types.is_large_list(ids.type)):
            raise ParameterError(f"TextStore needs an Arrow list<int32> array, got {ids.type}")
        self.ids = ids
        offsets = np.asarray(ids.offsets, dtype=np.int64)
        self.offsets = offsets - offsets[0]
        values = ids.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
        self.flat = values.to_numpy(zero_copy_only=False)  # int32, zero-copy over the (memory-mapped) buffer
        self.lengths = np.diff(self.offsets)
        self.pad_idx, self.max_len = int(pad_idx), max_len

    def __len__(self) -> int:
        return len(self.lengths)

    def gather(self, idx: np.ndarray) -> torch.Tensor:
        idx = np.asarray(idx, dtype=np.int64)
        lens, starts = self.lengths[idx], self.offsets[idx]
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
def cache_key(texts: pl.Series, settings: dict[str, Any], train_idx: np.ndarray | None = None) -> str:
    """Hash of the texts' bytes (Arrow buffers, no copy) and the ``settings``; of the training rows too when given,
    for a tokenizer that learns from them (a subword model trained at setup). A word tokenizer's tokens do not
    depend on the split, so its entry serves every split of the same texts."""
    arr = texts.cast(pl.String).to_arrow()
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    parts: list[Any] = [CACHE_VERSION, ENTRY_LAYOUT, json.dumps(settings, sort_keys=True, default=str), str(len(arr))]
    parts += [buf if buf is not None else b"" for buf in arr.buffers()]
    if train_idx is not None:
        parts.append(np.ascontiguousarray(train_idx, dtype=np.int64))
    return fingerprint(*parts)


def text_keys(texts: pl.Series, train_idx: np.ndarray | None = None) -> list[str]:
    """The content key of each text, which its entry's meta lists (``text_keys``) so that a later build can tell
    which entries it supersedes (:func:`save_cached`). With ``train_idx``, for a tokenizer that learns from the
    training texts, a key also says whether its text is a training one: an entry of another split of the same texts
    shares few keys, and is kept.

    >>> a, b = text_keys(pl.Series(["A good film.", "Dull."])), text_keys(pl.Series(["A good film.", "Dull!"]))
    >>> a[0] == b[0], a[1] == b[1]
    (True, False)
    """
    values = texts.cast(pl.String).fill_null("").to_list()
    if train_idx is None:
        return [fingerprint(t, digest_size=8) for t in values]
    train = np.zeros(len(values), dtype=bool)
    train[np.asarray(train_idx, dtype=np.int64)] = True
    return [fingerprint(t, "train" if tr else "valid", digest_size=8) for t, tr in zip(values, train.tolist())]


#: The meta fields the text block writes and reads back (with the ids' checksum, added here); ``vocab`` is the
#: entry's list of distinct tokens, which the ids index (``TokenizedTexts.vocab``).
META_FIELDS: dict[str, type | tuple[type, ...]] = {"vocab": list, "tok_state": dict, "settings": dict}
#: the share of the texts of the larger of two entries of the same settings that both must hold for the newer to be a
#: rebuild of the older (a few of its texts edited, added or deleted), which replaces it (:func:`_drop_superseded`)
COPY_SHARE = 0.95
#: what a text block gives to keep its token ids off disk, named when the cache folder cannot be written
TURN_OFF = "cache_dir=False (to TextBlock, TextBlock.from_df or TextDataLoaders)"


def save_cached(folder: Path, tokens: TokenizedTexts, meta: dict[str, Any]) -> bool:
    """Write the ``tokens``' ids (Arrow IPC ``list<int32>``, checksummed as it is written) and meta (JSON with
    the ids' checksum and the distinct tokens as ``vocab``), each atomically. The meta goes first and the
    ids' rename commits the entry: whoever finds the ids finds their meta. When the meta lists its texts' keys
    (``text_keys``, see :func:`text_keys`), the entries it supersedes are then deleted (:func:`_drop_superseded`).

    A cache folder that cannot be written (read-only, a file, a full disk) is said once by a
    CacheWriteWarning naming it and the fixes, and nothing is kept: returns whether the entry was written. A link in
    the entry folder's place is removed, never written through (a CacheWriteWarning when it cannot be)."""
    if tokens.offsets[-1] >= 2**31:
        raise DataError("more than 2**31 tokens in one column; split the corpus into several blocks")
    ids = pa.ListArray.from_arrays(pa.array(tokens.offsets.astype(np.int32)), pa.array(tokens.ids, pa.int32()))
    table = pa.table({"ids": ids})
    try:
        clean_stale_temps(folder.parent)
        remove_link(folder)
        with TempFile(folder, "ids") as tmp:
            with tmp.open() as raw:  # through the file TempFile created, never by its name (no link followed)
                sink = ChecksumWriter(raw)
                with pa.PythonFile(sink, mode="w") as f, pa.ipc.new_file(f, table.schema) as w:
                    w.write_table(table)
            body = {**meta, "vocab": tokens.vocab}
            atomic_write_json(folder / "meta.json",
                              {**body, "ids_checksum": sink.checksum(folder / "ids.arrow", body)})
            tmp.commit(folder / "ids.arrow")
    except OSError as e:
        warn_unwritable(folder.parent, e, "tokens", TURN_OFF)
        return False
    _drop_superseded(folder, meta)
    return True


def _drop_superseded(folder: Path, meta: dict[str, Any]) -> None:
    """Delete the entries beside the entry ``folder`` just written with ``meta`` that it replaces. An entry of the same
    settings is related to the new one when the new one takes over at least
    :data:`~pipekit.data.cache.SUPERSEDED_SHARE` of its texts, by their keys (the image cache's rule,
    :func:`~pipekit.data.cache.superseded`); an entry of a sample of the texts, or of texts overlapping them, shares
    fewer keys and stays. A related entry is then:

    - a copy, deleted, when the two share :data:`COPY_SHARE` of the larger one's texts: a rebuild after editing,
      adding or deleting a few texts so keeps one entry of its tokens, not a whole old copy per edit;
    - else the texts of another recipe over most of the same rows (a language model on every row and a classifier on
      the labelled ones, which holds each of its texts in the other's entry) or an older version after larger
      edits: the newest such entry stays and the others go, with any entry that the kept one in its turn took over
      (the version before it). So two recipes used in turn both read their tokens from the cache, and editing many
      texts at a time leaves at most one older entry, not one per edit.

    Safe beside other builds without a lock: an entry holding a temporary file is skipped (a live build is writing
    it; those of killed builds were removed first, by :func:`save_cached`), and an entry is uncommitted first (its
    ids go before its meta), so a build reading it meanwhile finds no entry and tokenizes again, without a warning
    (a mapped ids file stays readable after it is unlinked). A build killed here leaves a meta without ids, which
    is never read, and deleted by the next build that supersedes it. Entries of an older pipekit, which list no
    keys, are kept until cleared. Links are never followed; only pipekit's own files are removed."""
    keys = meta.get("text_keys")
    if not isinstance(keys, list):
        return
    taken = set(keys)
    settings = json.loads(json.dumps(meta["settings"]))  # as the other entries' meta read it back
    pattern = CACHE_LAYOUTS["text"][0]
    try:
        names = os.listdir(folder.parent)
    except OSError:
        return
    copies: list[Path] = []
    others: list[tuple[int, str, Path, set[str]]] = []  # related entries that are not copies, by the time their ids were written
    unrelated: list[tuple[int | None, set[str], Path]] = []  # entries of the same settings the new one takes little of
    for name in names:
        other = folder.parent / name
        if name == folder.name or not pattern.fullmatch(name) or link_target(other) is not None:
            continue
        try:
            if any(f.endswith(TEMP_SUFFIX) for f in os.listdir(other)):
                continue
            old = read_json(other / "meta.json", {"settings": dict, "text_keys": list})
        except (OSError, CacheEntryError):  # not a folder, removed meanwhile, no keys, damaged: left as it is
            continue
        try:
            written: int | None = os.stat(other / "ids.arrow", follow_symlinks=False).st_mtime_ns
        except OSError:  # a meta without ids (a build killed before committing them), never read
            written = None
        listed = {k for k in old["text_keys"] if isinstance(k, str)}
        shared = len(listed & taken)
        if old["settings"] != settings:
            continue
        if not superseded(shared, len(listed)):
            unrelated.append((written, listed, other))
        elif written is None or shared >= COPY_SHARE * max(len(listed), len(taken)):
            copies.append(other)
        else:
            others.append((written, name, other, listed))
    kept = max(others, key=lambda o: o[:2], default=None)
    gone = copies + [o[2] for o in others if o is not kept]
    if kept is not None:  # an older entry the kept one replaced in its turn (texts edited again since): it goes too
        gone += [other for written, listed, other in unrelated
                 if (written is None or written < kept[0]) and superseded(len(listed & kept[3]), len(listed))]
    for other in gone:
        with contextlib.suppress(OSError):  # a file that cannot be removed: the entry stays, to be cleared
            for f in ("ids.arrow", "meta.json"):
                (other / f).unlink(missing_ok=True)
            os.rmdir(other)


def load_cached(folder: Path, n_texts: int) -> tuple[TokenizedTexts, dict[str, Any]] | None:
    """The cached tokens of a column of ``n_texts`` texts (their ids memory-mapped) and meta, or None when absent;
    an entry that fails a check (meta missing a field or of a wrong type, a token listed twice, ids whose size or
    bytes differ from what was written, an entry this user's pipekit did not sign (its ids, vocab, tokenizer state
    and name are signed together), ids Arrow cannot validate, an id outside its list of tokens, another number of
    texts) gives a CacheRebuildWarning naming the file and None, so the caller rebuilds it.

    Verifying reads the ids file once per open: 2 ms for imdb_sample (1,000 reviews, 1.3 MB of ids). An entry folder
    that is a link is not read: the link is removed (with a CacheRebuildWarning) and the entry rebuilt as a folder.
    """
    clean_stale_temps(folder.parent)
    try:
        if remove_link(folder):
            return None
    except OSError:  # a link that cannot be removed: the tokens are built again, and save_cached says why
        return None
    ids_path, meta_path = folder / "ids.arrow", folder / "meta.json"
    if not ids_path.exists():  # never committed (a meta alone is what a killed build leaves)
        return None
    try:
        meta = read_json(meta_path, {**META_FIELDS, "ids_checksum": dict})
        if not all(isinstance(t, str) for t in meta["vocab"]):
            raise CacheEntryError("meta.json: field 'vocab' is not a list of strings")
        if len(set(meta["vocab"])) != len(meta["vocab"]):
            raise CacheEntryError("meta.json: field 'vocab' names a token twice")
        checksum = meta.pop("ids_checksum")  # signed with the rest of the meta: the vocab, the tokenizer state
        # opened once: the ids mapped are the ids verified, whatever is renamed into ids.arrow's place meanwhile
        with open_verified(ids_path, checksum, header_len=0, record_len=STREAM_RECORD, meta=meta) as f:
            source = pa.py_buffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        table = pa.ipc.open_file(source).read_all()
        if table.column_names != ["ids"] or table.schema.field("ids").type != pa.list_(pa.int32()):
            raise CacheEntryError(f"holds {table.schema}, not one list<int32> column 'ids'")
        for chunk in table.column("ids").chunks:  # before combining them, which trusts each chunk's offsets
            chunk.validate(full=True)  # offsets in order and within the values (ArrowInvalid otherwise)
        ids = table.column("ids").combine_chunks()
        offsets = np.asarray(ids.offsets, dtype=np.int64)
        flat = ids.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_numpy(zero_copy_only=False)
        if len(flat) and (int(flat.min()) < 0 or int(flat.max()) >= len(meta["vocab"])):
            raise CacheEntryError(f"holds ids outside the {len(meta['vocab'])} tokens of its meta.json")
        if len(offsets) - 1 != n_texts:
            raise CacheEntryError(f"holds the tokens of {len(offsets) - 1} texts, where the column has {n_texts}")
        return TokenizedTexts(meta.pop("vocab"), flat, offsets - offsets[0]), meta
    except CacheEntryError as e:
        if ids_path.exists():  # else superseded and deleted meanwhile by another build (see _drop_superseded)
            warn_rebuild(ids_path, e.reason)
    except (OSError, pa.ArrowException) as e:  # ArrowInvalid, ArrowIndexError, ...: a file pipekit did not write
        if ids_path.exists():
            warn_rebuild(ids_path, f"cannot be read as Arrow IPC ({e})")
    return None


def clear_token_cache(cache_dir: str | os.PathLike | None = None) -> int:
    """Delete every cached token entry under ``cache_dir`` (default: the standard cache, ``$PIPEKIT_CACHE``);
    returns the bytes freed. Only what pipekit wrote there is deleted (see
    :func:`~pipekit.data.cache.remove_cache_folder`)."""
    return remove_cache_folder(cache_folder(cache_dir, "text"))
