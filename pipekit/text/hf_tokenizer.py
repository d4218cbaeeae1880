"""A trained Hugging Face ``tokenizers`` tokenizer as the tokenizer of a ``TextBlock``.

``HFTokenizer`` takes a ``tokenizer.json`` file, its JSON text or a ``tokenizers.Tokenizer``, and tokenizes
with it as it was trained (its own normaliser, pre-tokenizer and model; pipekit's ``xxmaj``/``xxup`` rules
are not applied, the tokenizer never saw them). The texts are encoded by the library in parallel in Rust;
``xxbos`` (and ``xxeos``) are added as pipekit's models expect, and ``Numericalize`` builds the ids from
the tokens as for any tokenizer (give ``TextBlock(min_freq=1)`` to keep every piece the tokenizer makes).

Exports keep the tokenizer as data: a record stores the tokenizer's JSON (a data format the ``tokenizers``
library reads, no code), so a saved block or learner needs neither the file nor the object it was built
from.

Example:
    >>> from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    >>> tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    >>> tk.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> tk.train_from_iterator(["a good film", "a bad film", "good fun"], trainers.WordPieceTrainer(
    ...     vocab_size=60, special_tokens=["[UNK]"], show_progress=False))
    >>> HFTokenizer(tk).tokenize("a good film")
    ['xxbos', 'a', 'good', 'film']
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer as _Library

from pipekit.core.errors import DataError, ExportError, ParameterError
from pipekit.core.validate import Is, Options
from pipekit.data.cache import fingerprint
from pipekit.text.tokenize import BOS, EOS, PAD, UNK, TokenizedTexts, Tokenizer, as_text_series

__all__ = ["HFTokenizer"]


#: largest tokenizer JSON accepted: Hugging Face's largest published tokenizers (250k-token multilingual
#: vocabularies) are 17-35 MB; the library's parsed form takes several times the text
MAX_JSON_BYTES = 64 << 20
#: highest token id accepted, as a multiple of the number of tokens: ids index a list of the tokens, so ids
#: far past the vocabulary's size would size that list instead of the file (trained vocabularies are dense)
ID_SLACK, ID_EXTRA = 2, 256
#: longest padding the tokenizer may apply to a text (pipekit pads its batches itself; the library's own padding
#: builds every encoding at this length)
MAX_PAD = 8192


def _is_source(v: Any) -> bool:
    return isinstance(v, (_Library, str, os.PathLike)) or (
        isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 1)


def _is_path_text(source: Any) -> bool:
    """A path given as text (not the JSON text itself)."""
    return isinstance(source, str) and not source.lstrip().startswith("{")


def _too_large(n: int, where: str) -> None:
    if n > MAX_JSON_BYTES:
        raise DataError(f"HFTokenizer: tokenizer: {where} is {n:,} bytes of JSON, over the {MAX_JSON_BYTES:,} "
                        "accepted")


def _load(source: Any) -> _Library:
    """The tokenizer a parameter names: the object itself, a tokenizer.json path, its JSON text, or that
    text as UTF-8 bytes (how a pipekit file stores it)."""
    if isinstance(source, _Library):
        return source
    if isinstance(source, np.ndarray):
        _too_large(source.nbytes, "the stored tokenizer")
        text, where = source.tobytes().decode("utf-8", "replace"), "the stored tokenizer"
    elif isinstance(source, str) and not _is_path_text(source):
        _too_large(len(source), "the tokenizer JSON text")
        text, where = source, "the tokenizer JSON text"
    else:
        path = Path(source)
        if not path.is_file():
            raise ParameterError(f"HFTokenizer: {str(path)!r} is not a file; give the tokenizer.json that "
                                 "tokenizer.save(path) wrote, its JSON text or a tokenizers.Tokenizer")
        _too_large(path.stat().st_size, str(path))
        text, where = path.read_text(encoding="utf-8", errors="replace"), str(path)
    try:
        return _Library.from_str(text)
    except Exception as e:  # the library reports malformed JSON and unknown components as plain exceptions
        raise DataError(f"HFTokenizer: {where} is not a tokenizer the tokenizers library can read ({e})") from None


def _vocab_list(tk: _Library) -> list[str]:
    """The tokens by id; ids must stay near the number of tokens (the list is as long as the highest id)."""
    vocab = tk.get_vocab(with_added_tokens=True)
    if not vocab:
        return []
    top = max(vocab, key=vocab.__getitem__)
    limit = ID_SLACK * len(vocab) + ID_EXTRA
    if vocab[top] >= limit:
        raise DataError(f"HFTokenizer: tokenizer: token {top[:40]!r} has id {vocab[top]:,}, but the tokenizer has "
                        f"{len(vocab):,} tokens; ids must be below {limit:,} ({ID_SLACK} x the tokens + {ID_EXTRA})")
    out = [""] * (vocab[top] + 1)
    for token, i in vocab.items():
        out[i] = token
    return out


def _check_lengths(tk: _Library) -> None:
    """The library's own padding and truncation, which set how long each encoding is built: a fixed padding
    length (or multiple) is allocated for every text, and a truncation stride makes overlapping pieces of a
    long text (pipekit reads only the first)."""
    pad = tk.padding or {}
    for key in ("length", "pad_to_multiple_of"):
        if (pad.get(key) or 0) > MAX_PAD:
            raise DataError(f"HFTokenizer: tokenizer: its padding has {key}={pad[key]:,}, over the {MAX_PAD:,} tokens "
                            "accepted (pipekit pads batches itself: tokenizer.no_padding() turns the library's off)")
    trunc = tk.truncation or {}
    if trunc.get("stride"):
        raise DataError(f"HFTokenizer: tokenizer: its truncation has stride={trunc['stride']:,}; pipekit reads one "
                        "piece of each text, so give a stride of 0 (or tokenizer.no_truncation())")


class HFTokenizer(Tokenizer):
    """Texts -> tokens with a trained Hugging Face tokenizer (see the module docstring).

    ``tokenizer``: a ``tokenizers.Tokenizer``, the path of its ``tokenizer.json``, or that file's text.
    ``add_bos`` / ``add_eos`` put ``xxbos`` / ``xxeos`` around each text (the tokenizer's own special
    tokens are not added: pipekit's models use their own).
    """

    param_constraints = {"tokenizer": Is(_is_source, "a tokenizers.Tokenizer, the path of a tokenizer.json or its "
                                                     "JSON text"),
                         "add_bos": Options(True, False), "add_eos": Options(True, False)}

    def __init__(self, tokenizer: Any, add_bos: bool = True, add_eos: bool = False):
        self.tokenizer, self.add_bos, self.add_eos = tokenizer, add_bos, add_eos
        self.check_params()
        self._tk: _Library | None = None
        self._vocab: list[str] = []
        if _is_path_text(tokenizer):
            # a path given as text is read when the tokenizer is first used: a record rebuilt from a file (which
            # holds only text, never a Path) restores its state first, and is refused there before any reading
            if not Path(tokenizer).is_file():
                raise ParameterError(f"HFTokenizer: {tokenizer!r} is not a file; give the tokenizer.json that "
                                     "tokenizer.save(path) wrote, its JSON text or a tokenizers.Tokenizer")
        else:
            self._library()
        self._memo: dict[str, list[str]] = {}
        self._sub = None

    def _library(self) -> _Library:
        """The tokenizer, read and checked on first use."""
        if self._tk is None:
            tk = _load(self.tokenizer)
            self._vocab = _vocab_list(tk)
            _check_lengths(tk)
            self._tk = tk
        return self._tk

    def state_from_data(self, state: dict[str, Any]) -> None:
        """A record's tokenizer is the JSON the file stores: a path named in a file is never opened."""
        if self._tk is None:
            raise ExportError(f"HFTokenizer: tokenizer: a saved HFTokenizer holds its tokenizer as JSON data, not the "
                              f"path {str(self.tokenizer)[:200]!r}; loading a file never opens another one")
        super().state_from_data(state)

    # -- what a file keeps and what the token cache is keyed by -------------------------------------------
    def json(self) -> str:
        """The tokenizer as the JSON text ``tokenizer.json`` holds."""
        return self._library().to_str()

    def params_to_data(self) -> dict[str, Any]:
        # the tokenizer itself, as UTF-8 JSON in the file's arrays (a large vocabulary stays out of record.json)
        return {"tokenizer": np.frombuffer(self.json().encode("utf-8"), dtype=np.uint8).copy(),
                "add_bos": self.add_bos, "add_eos": self.add_eos}

    def cache_settings(self) -> dict[str, Any]:
        return {"hf_tokenizer": fingerprint(self.json()), "add_bos": self.add_bos, "add_eos": self.add_eos}

    # -- tokenizing ----------------------------------------------------------------------------------------
    def setup(self, texts: Any) -> None:
        """Nothing to learn: the tokenizer was trained before."""

    def encode(self, texts: Any) -> TokenizedTexts:
        """Tokenize many texts (one call into the library, parallel in Rust)."""
        s = as_text_series(texts)
        encs = self._library().encode_batch_fast(s.to_list(), add_special_tokens=False) if len(s) else []
        lens = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
        ids = np.fromiter((i for e in encs for i in e.ids), dtype=np.int64, count=int(lens.sum()))
        return self.with_markers(list(self._vocab), ids, np.concatenate([[0], np.cumsum(lens)]))

    def decode(self, tokens: Any) -> str:
        """Text from tokens, by the tokenizer's own decoder; pipekit's markers are dropped and ``xxunk`` is
        written where a token was not in the vocabulary."""
        tk = self._library()
        parts: list[str] = []
        run: list[int] = []
        for t in tokens:
            if t in (BOS, EOS, PAD):
                continue
            i = tk.token_to_id(t) if t != UNK else None
            if i is None:
                if run:
                    parts.append(tk.decode(run))
                    run = []
                parts.append(UNK if t == UNK else str(t))
            else:
                run.append(i)
        if run:
            parts.append(tk.decode(run))
        return " ".join(p for p in parts if p)
