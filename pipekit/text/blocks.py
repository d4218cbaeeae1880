"""TextBlock: a text column (or text files) -> token ids, for classifiers and language models.

>>> import polars as pl
>>> from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock
>>> df = pl.DataFrame({"text": ["A great film!", "Dull.", "Great fun", "So dull"] * 4,
...                    "label": ["pos", "neg", "pos", "neg"] * 4, "is_valid": [False] * 12 + [True] * 4})
>>> dls = DataBlock(blocks=(TextBlock.from_df("text", min_freq=1, cache_dir=False), CategoryBlock),
...                 get_x=ColReader("text"), get_y=ColReader("label"),
...                 splitter=ColSplitter("is_valid")).dataloaders(df, bs=4, seed=0)
>>> x, y = dls.one_batch()
>>> x.shape[0], dls.vocab, dls.blocks[0].vocab[:3]
(4, ['neg', 'pos'], ['xxunk', 'xxpad', 'xxbos'])
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipekit.data.blocks import TransformBlock
from pipekit.text.loaders import LMDataLoader, SortedDataLoader
from pipekit.text.numericalize import Numericalize
from pipekit.text.store import TextStore, cache_key, default_cache_dir, load_cached, save_cached
from pipekit.text.tokenize import FLD, PAD, Tokenizer, as_text_series, read_text_file


class TextBlock(TransformBlock):
    """Texts tokenized (:class:`Tokenizer`) and numericalized (:class:`Numericalize`) once, cached on disk.

    ``is_lm=True`` makes a language-model block (batches are (x, y shifted by one) windows of ``seq_len``
    from ``bs`` contiguous streams); otherwise batches are texts padded to the batch's longest (pad first),
    sorted by length so padding stays small. ``vocab`` reuses a vocabulary (e.g. the language model's:
    ``TextBlock.from_df('text', vocab=dls_lm.text_vocab)``). ``read_files=True`` means the values are file
    paths to read (``errors`` is the policy for bytes that are not valid ``encoding``).
    ``cache_dir=False`` switches the cache off; None uses ``$PIPEKIT_CACHE/text``.
    """

    kind = "text"
    loss_kind = None

    def __init__(self, tok: Tokenizer | None = None, is_lm: bool = False, seq_len: int = 72,
                 vocab: Sequence[str] | None = None, min_freq: int = 3, max_vocab: int = 60000,
                 max_len: int | None = None, read_files: bool = False, encoding: str = "utf-8",
                 errors: str = "strict", cache_dir: str | os.PathLike | bool | None = None):
        if not isinstance(seq_len, (int, np.integer)) or seq_len < 2:
            raise ValueError(f"seq_len must be an int >= 2, got {seq_len!r}")
        if max_len is not None and (not isinstance(max_len, (int, np.integer)) or max_len < 1):
            raise ValueError(f"max_len must be None or an int >= 1, got {max_len!r}")
        if errors not in ("strict", "replace", "ignore"):
            raise ValueError(f"errors={errors!r} is not supported; use 'strict', 'replace' or 'ignore'")
        if tok is not None and not isinstance(tok, Tokenizer):
            raise TypeError(f"tok must be a pipekit.text.Tokenizer, got {type(tok).__name__}")
        super().__init__(type_tfms=[tok if tok is not None else Tokenizer(),
                                    Numericalize(min_freq=min_freq, max_vocab=max_vocab, vocab=vocab)],
                         dl_type=LMDataLoader if is_lm else SortedDataLoader)
        self.is_lm, self.seq_len, self.max_len = bool(is_lm), int(seq_len), max_len
        self.min_freq, self.max_vocab = min_freq, max_vocab
        self.read_files, self.encoding, self.errors = bool(read_files), encoding, errors
        self.cache_dir = cache_dir
        self.from_cache_: bool | None = None
        if self.is_lm:
            self.kind = "text_lm"

    @property
    def tok(self) -> Tokenizer:
        return self.type_tfms.tfms[0]  # type: ignore[return-value]

    @property
    def num(self) -> Numericalize:
        return self.type_tfms.tfms[1]  # type: ignore[return-value]

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_df(cls, text_cols: str | Sequence[str] = "text", vocab: Sequence[str] | None = None,
                is_lm: bool = False, seq_len: int = 72, tok: Tokenizer | None = None, **kwargs: Any) -> TextBlock:
        """A block for text column(s) of a table; with several columns (read with
        ``ColReader([...])``), each text is ``xxfld 1 <first> xxfld 2 <second> ...``."""
        if isinstance(text_cols, str):
            text_cols = [text_cols]
        if not text_cols or not all(isinstance(c, str) for c in text_cols):
            raise ValueError(f"text_cols must be a column name or a list of names, got {text_cols!r}")
        block = cls(tok=tok, is_lm=is_lm, seq_len=seq_len, vocab=vocab, **kwargs)
        block.text_cols = list(text_cols)
        return block

    @classmethod
    def from_folder(cls, path: str | os.PathLike | None = None, vocab: Sequence[str] | None = None,
                    is_lm: bool = False, seq_len: int = 72, tok: Tokenizer | None = None,
                    encoding: str = "utf-8", errors: str = "strict", **kwargs: Any) -> TextBlock:
        """A block whose values are paths of text files (``get_items=get_text_files``)."""
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"TextBlock.from_folder: {path} does not exist")
        return cls(tok=tok, is_lm=is_lm, seq_len=seq_len, vocab=vocab, read_files=True, encoding=encoding,
                   errors=errors, **kwargs)

    # ------------------------------------------------------------------ raw values -> texts
    def texts(self, raw: pl.Series) -> pl.Series:
        """The raw column as one text per item (files read, several columns joined with ``xxfld``)."""
        if self.read_files:
            paths = raw.cast(pl.String).to_list()
            with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # file reads release the GIL
                texts = list(pool.map(lambda p: read_text_file(p, self.encoding, self.errors), paths))
            return pl.Series("text", texts, dtype=pl.String)
        if isinstance(raw.dtype, pl.Struct):
            fields = raw.struct.unnest()
            parts = []
            for i, name in enumerate(fields.columns):
                parts += [pl.lit(f"{FLD} {i + 1} "), pl.col(name).cast(pl.String).fill_null("")]
                if i + 1 < fields.width:
                    parts.append(pl.lit(" "))
            return fields.select(pl.concat_str(parts).alias("text")).to_series()
        return as_text_series(raw, "TextBlock values")

    # ------------------------------------------------------------------ building
    def _settings(self) -> dict[str, Any]:
        return {"tok": self.tok.config(), "min_freq": self.num.min_freq, "max_vocab": self.num.max_vocab,
                "vocab": self.num.vocab}

    def _cache_folder(self) -> Path | None:
        if self.cache_dir is False:
            return None
        return Path(self.cache_dir) if self.cache_dir not in (None, True) else default_cache_dir()

    def build(self, raw: pl.Series, train_idx: np.ndarray, item_tfms: Sequence[Any] = (), trace: Any = None) -> TextStore:
        """Tokenize all texts once, learn the vocab on ``train_idx``, store ids as list<int32> (cached)."""
        texts = self.texts(raw)
        train_idx = np.asarray(train_idx, dtype=np.int64)
        root = self._cache_folder()
        folder = root / cache_key(texts, self._settings(), train_idx) if root is not None else None
        hit = load_cached(folder) if folder is not None else None
        if hit is not None:
            ids, meta = hit
            self.tok.load_state(meta["tok_state"])
            self.num.load_state({"vocab_": meta["vocab"]})
            self.from_cache_ = True
        else:
            self.tok.setup(texts.gather(train_idx))
            tokens = self.tok.encode(texts)
            self.num.setup(tokens, train_idx)
            ids = self.num.encode(tokens)
            if trace is not None:
                trace(repr(self.tok), f"{len(tokens.ids)} tokens, {len(tokens.vocab)} distinct")
            if folder is not None:
                save_cached(folder, ids, {"vocab": self.num.vocab_, "tok_state": self.tok.state(),
                                          "settings": self._settings()})
            self.from_cache_ = False
        if trace is not None:
            trace(repr(self.num), f"vocab of {len(self.num.vocab_)}")
        return TextStore(ids, pad_idx=self.pad_idx, max_len=self.max_len)

    def encode_new(self, raw: pl.Series) -> TextStore:
        """Encode new texts with the fitted tokenizer and vocab (unknown words -> xxunk)."""
        tokens = self.tok.encode(self.texts(raw))
        return TextStore(self.num.encode(tokens), pad_idx=self.pad_idx, max_len=self.max_len)

    def encode_text(self, text: str) -> np.ndarray:
        """Ids of one text (int64)."""
        return self.num.encode_flat(self.tok.encode([text])).astype(np.int64)

    # ------------------------------------------------------------------ vocab, decoding, showing
    @property
    def vocab(self) -> list[str] | None:
        return self.num.vocab_

    @property
    def pad_idx(self) -> int:
        v = self.num.vocab_
        return v.index(PAD) if v is not None and PAD in v else 1

    @property
    def c(self) -> int | None:
        return len(self.num.vocab_) if self.num.vocab_ is not None else None

    def decode(self, value: Any) -> str:
        """Ids (padding dropped) -> readable text."""
        toks = self.num.decode(value)
        return self.tok.decode([t for t in toks if t != PAD])

    def show(self, ax: Any, value: Any, title: str | None = None) -> None:
        import textwrap

        ax.axis("off")
        ax.text(0, 1, textwrap.fill(str(value)[:600], 60), ha="left", va="top", fontsize=7, wrap=True)
        if title:
            ax.set_title(title)

    def config(self) -> dict[str, Any]:
        return {"is_lm": self.is_lm, "seq_len": self.seq_len, "vocab": self.num.vocab,
                "min_freq": self.min_freq, "max_vocab": self.max_vocab, "max_len": self.max_len,
                "read_files": self.read_files, "encoding": self.encoding, "errors": self.errors,
                "cache_dir": str(self.cache_dir) if isinstance(self.cache_dir, (str, os.PathLike)) else self.cache_dir}

