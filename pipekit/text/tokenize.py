"""Word and subword tokenization with the book's rules and special tokens.

How a corpus is tokenized (all heavy work in Rust, none per text in Python):

1. HTML fixes (``<br />`` -> newline, ``&amp;`` -> ``&`` ...) in one Aho-Corasick pass (Polars), then any other
   character reference (``&eacute;`` -> ``é``).
2. Split every text into whitespace-delimited chunks (Polars regex, Rust) and find the distinct chunks.
3. Each *distinct* chunk is pre-tokenized once by the ``tokenizers`` library (an Oniguruma regex that
   splits words, punctuation, contractions such as ``do n't`` and runs of repeated punctuation) and the
   rules run on its pieces: ``xxmaj``/``xxup`` case markers, lower-casing, ``xxrep n c`` for characters
   repeated three times or more. A corpus has far fewer distinct chunks than chunks, so this is cheap.
4. Runs of the same word (three or more) become ``xxwrep n w``; every text starts with ``xxbos``.
5. The per-chunk token lists are expanded over the whole corpus with vectorised NumPy gathers.

In subword mode (``"bpe"`` / ``"unigram"``) a ``tokenizers`` model is trained on the word-level tokens
of the training texts and applied, again once per distinct word, in parallel in Rust. Without the rules
(``rules=False``, the book's ``SubwordTokenizer``) the model sees the raw text as SentencePiece does: its
whitespace-separated chunks, ``▁`` marking the space before each, punctuation kept against its word.
"""
from __future__ import annotations

import codecs
import html
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, overload

import numpy as np
import polars as pl
import pyarrow as pa
from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as _HFTokenizer

from pipekit.core.errors import DataError, FieldError, NotFittedError, ParameterError, warn
from pipekit.core.validate import Interval, Is, Options, check, is_missing, is_pandas, unknown_names
from pipekit.data.items import wide_encoding
from pipekit.data.lists import coll_repr
from pipekit.data.transform import Transform

UNK, PAD, BOS, EOS, FLD = "xxunk", "xxpad", "xxbos", "xxeos", "xxfld"
TK_REP, TK_WREP, TK_UP, TK_MAJ = "xxrep", "xxwrep", "xxup", "xxmaj"
#: special tokens, always the first ids of a vocabulary (xxunk = 0, xxpad = 1)
SPECIAL_TOKENS: list[str] = [UNK, PAD, BOS, EOS, FLD, TK_REP, TK_WREP, TK_UP, TK_MAJ]

# HTML left in scraped reviews and the wikitext escapes, fixed before anything else.
HTML_FIXES: list[tuple[str, str]] = [
    ("<br />", "\n"), ("<br/>", "\n"), ("<br>", "\n"), ("&amp;", "&"), ("&quot;", '"'), ("&#39;", "'"),
    ("&lt;", "<"), ("&gt;", ">"), ("&nbsp;", " "), ("#39;", "'"), ("#146;", "'"), ("#36;", "$"),
    ("\\n", "\n"), ('\\"', '"'), ("<unk>", UNK), (" @.@ ", "."), (" @-@ ", "-"), (" @,@ ", ","),
    ("\u2019", "'"),
]
# any other character reference left after HTML_FIXES (``&copy;``, ``&eacute;``, ``&#8211;``) becomes its
# character, as html.unescape reads it; only the ones closed by ";", so "&para=2" in a URL stays as written
_RE_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
# a word: letters and digits, with the zero-width (non-)joiners written inside it (Persian "می‌خواهم", the
# Devanagari conjunct "क्‍ष") kept in it, not split off as tokens of their own
_WORD = r"\w+(?:[\x{200C}\x{200D}]+\w+)*"
# an emoji with what belongs to it: a flag (two regional indicators), a pictograph with its skin-tone modifiers,
# variation selectors and the pictographs joined to it by U+200D (a family, a rainbow flag), a keycap (1️⃣)
_EMOJI = (r"\p{Regional_Indicator}{2}"
          r"|\p{Extended_Pictographic}(?:[\x{FE0E}\x{FE0F}]|\p{Emoji_Modifier})*"
          r"(?:\x{200D}\p{Extended_Pictographic}(?:[\x{FE0E}\x{FE0F}]|\p{Emoji_Modifier})*)*"
          r"|[0-9#*]\x{FE0F}?\x{20E3}")
# pieces of one chunk: runs of >= 3 equal punctuation marks (-> xxrep), contractions the way spaCy splits
# them ("do n't", "it 's"), emoji, words, single punctuation marks.
_PIECE_PATTERN = (r"([^\w\s])\1{2,}|(?i:n't)(?!\w)|'(?i:s|m|re|ve|ll|d)(?!\w)|" + _WORD + r"(?=(?i:n't)(?!\w))"
                  r"|" + _EMOJI + r"|" + _WORD + r"|[^\w\s]")
#: the version of the splitting and the rules: part of the token cache's key (:meth:`Tokenizer.cache_settings`),
#: so tokens cached by a version that split texts otherwise are made afresh
RULES_VERSION = 3
_CHUNK_PATTERN = r"\n+|\S+"
_UNITS = ("words", "chunks")  # what a subword model is trained on and applied to (Tokenizer.units_)
_RE_REP = re.compile(r"(\S)\1{2,}")
_RE_REP_SPLIT = re.compile(r"((\S)\2{2,})")
_RE_WORD = re.compile(r"^\w+(?:[\u200c\u200d]+\w+)*$")
# full-width punctuation of Chinese and Japanese (。，！？、「」 ...): written with no space before or after it
_RE_WIDE_PUNCT = re.compile(r"^(?:(?!\w)[\u3001-\u303f\uff01-\uffee])+$")
_MEMO_MAX = 2_000_000
_ASCII_TRIPLES = "|".join(ch * 3 for ch in "abcdefghijklmnopqrstuvwxyz")
_CONTRACTIONS = {"n't", "'s", "'m", "'re", "'ve", "'ll", "'d"}
_NO_SPACE_BEFORE = set(".,!?;:)]}%\u0964\u0965") | _CONTRACTIONS  # and the Devanagari danda (।, ॥)
_NO_SPACE_AFTER = set("([{$#")
#: the most characters that runs of a repeated character or word (``xxrep n c``, ``xxwrep n w``) may add to one
#: decoded text, all its runs together: a text or a model's sample holding ``xxrep 1234567890 a`` would otherwise
#: take 1.2 GB to decode (the longest runs of a review of imdb_sample add 69). A run that would pass it is written
#: as its tokens (``xxrep 1234567890 a``). Read at each decode, so setting
#: ``pipekit.text.tokenize.MAX_RUN_CHARS`` raises it for the process; None leaves no bound
MAX_RUN_CHARS: int | None = 1_000_000


class TokenizedTexts:
    """A tokenized corpus: distinct token strings plus a flat id array with per-text offsets.

    ``vocab`` is the inventory of tokens that occur (not the model vocabulary: :class:`Numericalize`
    builds that); text ``i`` is ``[vocab[j] for j in ids[offsets[i]:offsets[i+1]]]``.

    >>> tt = Tokenizer().encode(["Hello world!", ""])
    >>> tt[0], tt[1], len(tt)
    (['xxbos', 'xxmaj', 'hello', 'world', '!'], ['xxbos'], 2)
    """

    def __init__(self, vocab: list[str], ids: np.ndarray, offsets: np.ndarray):
        self.vocab, self.ids, self.offsets = vocab, ids, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    #: how many of the first text's tokens the repr shows
    SHOWN = 10

    def __repr__(self) -> str:
        """How many texts and tokens, and the first text's first tokens (:func:`~pipekit.data.lists.coll_repr`).

        >>> Tokenizer()(["Hello world. This is a TEST.", "Bye."])
        TokenizedTexts(2 texts, 16 tokens; text 0: (#12) ['xxbos', 'xxmaj', 'hello', 'world', '.', 'xxmaj', 'this', 'is', 'a', 'xxup'...])
        """
        n, n_tokens = len(self), int(self.offsets[-1] - self.offsets[0])
        first = f"; text 0: {coll_repr(self[0], self.SHOWN)}" if n else ""
        return (f"TokenizedTexts({n} text{'' if n == 1 else 's'}, {n_tokens} token{'' if n_tokens == 1 else 's'}"
                f"{first})")

    @classmethod
    def from_lists(cls, token_lists: Sequence[Sequence[str]], what: str = "tokens") -> TokenizedTexts:
        """Many texts' token lists (``[tkn(t) for t in texts]``) as a :class:`TokenizedTexts`.

        >>> tt = TokenizedTexts.from_lists([["xxbos", "a", "film"], ["xxbos", "a"]])
        >>> tt[1], tt.vocab, tt.lengths.tolist()
        (['xxbos', 'a'], ['xxbos', 'a', 'film'], [3, 2])
        """
        if isinstance(token_lists, (str, bytes)) or not isinstance(token_lists, Sequence):
            raise ParameterError(f"{what}: expected a list of token lists (one per text), got "
                                 f"{type(token_lists).__name__}")
        index: dict[str, int] = {}
        ids: list[int] = []
        lengths = np.empty(len(token_lists), dtype=np.int64)
        ok = True
        for k, toks in enumerate(token_lists):
            if isinstance(toks, (str, bytes)) or not isinstance(toks, Sequence):
                ok = False
                break
            try:
                ids += [index.setdefault(t, len(index)) for t in toks]
            except TypeError:  # an unhashable token
                ok = False
                break
            lengths[k] = len(toks)
        # the types are checked on the distinct tokens only; the text holding a bad one is looked for on failure
        if not ok or not all(isinstance(t, str) for t in index):
            cls._refuse(token_lists, what)
        return cls(list(index), np.asarray(ids, dtype=np.int32),
                   np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

    @staticmethod
    def _refuse(token_lists: Sequence[Any], what: str) -> None:
        """Raise naming the first text that is no list of tokens or holds a token that is not a str."""
        for k, toks in enumerate(token_lists):
            if isinstance(toks, (str, bytes)) or not isinstance(toks, Sequence):
                raise ParameterError(f"{what}: text {k} is a {type(toks).__name__}, not a list of tokens; give one "
                                     f"list of str per text, as tkn(text) returns")
            bad = next((j for j, t in enumerate(toks) if not isinstance(t, str)), None)
            if bad is not None:
                raise ParameterError(f"{what}: token {bad} of text {k} is {toks[bad]!r:.40}, not a str")

    @overload
    def __getitem__(self, i: int) -> list[str]: ...

    @overload
    def __getitem__(self, i: slice | Sequence[int] | np.ndarray) -> TokenizedTexts: ...

    def __getitem__(self, i: Any) -> list[str] | TokenizedTexts:
        """Text ``i``'s tokens (``tt[-1]``: the last text's). A slice, a list (or array) of positions, or a boolean
        mask of one flag per text gives a :class:`TokenizedTexts` of those texts, in that order, as the book's
        ``toks200[:5]`` gives a list of them: their ids are gathered (:meth:`take`), not tokenized again.

        >>> tt = Tokenizer()(["A film.", "Dull!", "Great fun"])
        >>> tt[1:], tt[[2, 0]][0]
        (TokenizedTexts(2 texts, 8 tokens; text 0: ['xxbos', 'xxmaj', 'dull', '!']), ['xxbos', 'xxmaj', 'great', 'fun'])
        """
        n = len(self)
        if isinstance(i, (int, np.integer)):
            if not -n <= i < n:
                raise IndexError(f"text {i} is outside the {n} texts (positions 0 to {n - 1}, or -{n} to -1 from "
                                 f"the end)")
            i = int(i) % n  # tt[-1] is the last text
            return [self.vocab[j] for j in self.ids[self.offsets[i]:self.offsets[i + 1]]]
        if isinstance(i, slice):
            return self.take(np.arange(n)[i])
        return self.take(self._positions(i))

    def _positions(self, key: Any) -> np.ndarray:
        """The text positions (int64, from 0) a list or array of positions or a boolean mask stands for; an
        :class:`IndexError` names a position outside the texts (or a mask of another length)."""
        n = len(self)
        if isinstance(key, (str, bytes)) or not isinstance(key, (Sequence, np.ndarray)) and not hasattr(key, "__array__"):
            raise ParameterError(f"TokenizedTexts[{key!r:.40}]: a {type(key).__name__} is not a position; give a text's "
                                 f"position (an int), a slice, a list of positions or a boolean mask of {n} flags")
        arr = np.asarray(key)
        if arr.ndim != 1 and arr.size:
            raise ParameterError(f"TokenizedTexts: positions of {arr.ndim} dimensions (shape {arr.shape}); give one "
                                 "list of positions")
        if arr.dtype == bool:
            if len(arr) != n:
                raise IndexError(f"a boolean mask of {len(arr)} flags for {n} texts; give one flag per text")
            return np.flatnonzero(arr)
        if not arr.size:
            return np.zeros(0, dtype=np.int64)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ParameterError(f"TokenizedTexts: positions must be ints, got {arr.dtype} values "
                                 f"({arr.ravel()[:3].tolist()!r:.60}); give a list of positions or a boolean mask")
        arr = arr.astype(np.int64)
        bad = (arr < -n) | (arr >= n)
        if bad.any():
            raise IndexError(f"text {int(arr[bad][0])} is outside the {n} texts (positions 0 to {n - 1}, or -{n} "
                             f"to -1 from the end)")
        return arr % n if n else arr

    def take(self, idx: np.ndarray) -> TokenizedTexts:
        """A :class:`TokenizedTexts` of the texts at the positions ``idx`` (from 0, checked by the caller), in
        that order: their ids gathered without a Python loop, and ``vocab`` cut to the tokens they use."""
        idx = np.asarray(idx, dtype=np.int64)
        lengths = self.lengths[idx]
        uniq, ids = np.unique(self.subset_ids(idx), return_inverse=True)
        return TokenizedTexts([self.vocab[j] for j in uniq.tolist()], ids.astype(np.int32).reshape(-1),
                              np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

    def __iter__(self) -> Iterator[list[str]]:
        return (self[i] for i in range(len(self)))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset_ids(self, idx: np.ndarray | None) -> np.ndarray:
        """The flat ids of the texts at ``idx`` (all texts when None), gathered without a Python loop."""
        if idx is None:
            return self.ids
        idx = np.asarray(idx, dtype=np.int64)
        return self.ids[ragged_positions(self.offsets[idx], self.lengths[idx])]

    def counts(self, idx: np.ndarray | None = None) -> np.ndarray:
        """How often each token of ``vocab`` occurs in the texts at ``idx``."""
        return np.bincount(self.subset_ids(idx), minlength=len(self.vocab))


def ragged_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat positions ``starts[k] + 0..lengths[k]-1`` for all k, concatenated (vectorised).

    >>> ragged_positions(np.array([10, 0]), np.array([2, 3])).tolist()
    [10, 11, 0, 1, 2]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    seg_start = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts, dtype=np.int64) - seg_start, lengths) + np.arange(total, dtype=np.int64)


def _factorize(values: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """The distinct values (in order of appearance) and each value's index among them, as int64."""
    uniq = values.unique(maintain_order=True)
    return uniq, (values.replace_strict(uniq, pl.int_range(len(uniq), eager=True, dtype=pl.Int64), return_dtype=pl.Int64)
                  .to_numpy() if len(values) else np.zeros(0, np.int64))


def _normalize_text(s: pl.Series) -> pl.Series:
    """Texts as the tokenizer splits them: Windows' line endings (``\\r\\n``) and a lone ``\\r`` are ``\\n``, so
    ``\\r\\n\\r\\n`` is the one paragraph break ``\\n\\n`` is (the ``\\r`` would cut the run of line breaks in two
    tokens), and a byte-order mark starting a text (U+FEFF, which :func:`read_text_file` drops from a file) is no
    character of it.

    >>> _normalize_text(pl.Series(["\\ufeffGood.\\r\\n\\r\\nBad.\\rUgly."])).to_list()
    ['Good.\\n\\nBad.\\nUgly.']
    """
    if s.str.contains("\r", literal=True).any():
        s = s.str.replace_all("\r\n?", "\n")
    if s.str.starts_with("\ufeff").any():
        s = s.str.strip_prefix("\ufeff")
    return s


def _unescape_entities(s: pl.Series) -> pl.Series:
    """``s`` with its character references unescaped; only the texts that hold one go through Python."""
    has = s.str.contains(_RE_ENTITY.pattern).fill_null(False)
    if not has.any():
        return s
    rows = has.arg_true()
    fixed = [_RE_ENTITY.sub(lambda m: html.unescape(m.group()), t) for t in s.gather(rows).to_list()]
    return s.scatter(rows, pl.Series(s.name, fixed, dtype=pl.String))


def _refuse_non_text(values: list, name: str) -> None:
    """A DataError naming the first value of ``values`` that is missing (NaN, pandas' NA) or not a string."""
    for i, v in enumerate(values):
        if isinstance(v, str) or v is None:
            continue
        if is_missing(v):
            raise DataError(f"{name}: text at row {i} is missing (NaN or NA); fill it (e.g. .fillna('') in pandas, "
                            ".fill_null('') in Polars) or drop the row")
        raise DataError(f"{name}: text at row {i} is a {type(v).__name__} ({str(v)[:30]!r}), not a string; convert "
                        "the texts (pandas: .astype(str); Polars: .cast(pl.String)) or pick the text column")


def read_text_files(texts: Any) -> Any:
    """``texts``, or, when they are files (``pathlib.Path`` items: ``get_text_files(path)``), the text each
    holds (:func:`read_text_file`: UTF-8, a file that is not is named).

    >>> read_text_files(["a text"])
    ['a text']
    """
    values = texts.to_list() if isinstance(texts, pl.Series) and texts.dtype == pl.Object else texts
    if not isinstance(values, (list, tuple)) or not values or not isinstance(values[0], os.PathLike):
        return texts
    out = []
    for i, f in enumerate(values):
        if not isinstance(f, os.PathLike):
            raise DataError(f"text {i} is a {type(f).__name__} where text 0 is a file; give files or texts, not both")
        out.append(read_text_file(Path(f)))
    return out


def as_text_series(texts: Any, name: str = "text") -> pl.Series:
    """Texts as a Polars string Series; nulls (None, NaN) and non-strings fail with the row number.

    >>> as_text_series(["a b", float("nan")])
    Traceback (most recent call last):
    ...
    pipekit.core.errors.DataError: text: text at row 1 is missing (NaN or NA); fill it (e.g. .fillna('') in pandas, .fill_null('') in Polars) or drop the row
    """
    if isinstance(texts, str):
        raise ParameterError(f"{name} must be a sequence of strings, got one str; wrap it in a list: [{texts[:30]!r}]")
    if isinstance(texts, (bytes, bytearray)):
        raise ParameterError(f"{name} must be a sequence of strings, got {type(texts).__name__}; decode it and wrap it "
                             "in a list: [data.decode('utf-8')]")
    if not isinstance(texts, Iterable):
        raise ParameterError(f"{name} must be a sequence of strings (a list, NumPy array or Polars Series), got "
                             f"{type(texts).__name__}")
    if isinstance(texts, pl.Series):
        s = texts
    else:
        values = list(texts) if not isinstance(texts, np.ndarray) else texts.tolist()
        try:
            s = pl.Series(name, values)
        except (TypeError, pl.exceptions.PolarsError):  # a NaN or a number among strings: say which row
            _refuse_non_text(values, name)
            raise
    if s.dtype == pl.Null:  # no texts, or only missing ones (named below)
        s = s.cast(pl.String)
    if len(s) and s.dtype != pl.String:
        if s.dtype.is_float() and s.is_nan().any():
            _refuse_non_text(s.to_list(), name)
        else:
            raise DataError(f"{name} must hold strings, got dtype {s.dtype}; convert the column to text (a Polars "
                            f"column: .cast(pl.String); a pandas one: df[col].astype(str)) or pick the text column")
    if s.null_count():
        row = int(s.is_null().arg_true()[0])
        raise DataError(f"{name}: text at row {row} is missing (null); fill it (e.g. .fill_null('')) or drop "
                         f"the row ({s.null_count()} missing in total)")
    return s


def read_text_file(path: str | Path, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Read a text file; bytes that are not valid ``encoding`` fail with the file name and byte offset.

    ``errors`` is Python's codec policy: "strict" (raise), "replace" (U+FFFD) or "ignore" (drop bytes). A file that
    begins with a UTF-16 or UTF-32 byte-order mark (Windows Notepad's "Unicode") read as UTF-8 is refused whatever
    ``errors`` says (:func:`~pipekit.data.items.wide_encoding_error` tells it): "replace" would read a NUL between
    every two letters.

    >>> _ = Path("/tmp/pk_read.txt").write_bytes(b"caf\\xc3\\xa9")
    >>> read_text_file("/tmp/pk_read.txt")
    'café'
    >>> _ = Path("/tmp/pk_bom.txt").write_bytes(b"\\xef\\xbb\\xbfGreat film")
    >>> read_text_file("/tmp/pk_bom.txt")
    'Great film'
    """
    check("read_text_file", errors=(errors, Options("strict", "replace", "ignore")))
    data = Path(path).read_bytes()
    if _is_utf8(encoding) and (wide := wide_encoding(Path(path))) is not None:
        (name, codec), p = wide, Path(path)
        raise DataError(f"{path}: the file is {name} text (it begins with {name}'s byte-order mark), and text files "
                        f"are read as {encoding}, which would give a NUL character between letters (errors='replace' "
                        f"too); re-save it as UTF-8 (e.g. iconv -f {codec} -t utf-8 {p.name} > {p.stem}-utf8{p.suffix}), "
                        f"or pass encoding={codec!r} if every file is {name}") from None
    try:
        text = data.decode(encoding, errors=errors)
        # a byte-order mark (Windows editors start UTF-8 files with one) marks the encoding; it is no word of the text
        return text[1:] if text.startswith("\ufeff") else text
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid {encoding} at byte {e.start} ({data[e.start:e.start + 4]!r}); "
                         f"fix the file, pass encoding=... if it uses another one, or errors='replace' "
                         f"to substitute U+FFFD for bad bytes") from None


def _is_utf8(encoding: str) -> bool:
    """Whether ``encoding`` names UTF-8 (``"utf-8"``, ``"UTF8"``, ``"utf-8-sig"``); False for an unknown name, which
    decoding then names."""
    try:
        return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    except LookupError:
        return False


def _split_reps(tok: str) -> list[str]:
    """'soooo' -> ['s', 'xxrep', '4', 'o'] (the book's rule for characters repeated 3+ times)."""
    parts = _RE_REP_SPLIT.split(tok)  # [text, run, its character, text, run, its character, ..., text]
    out = [parts[0]]
    for k in range(1, len(parts), 3):
        out += [TK_REP, str(len(parts[k])), parts[k + 1], parts[k + 2]]
    return [p for p in out if p]


def _case_marker(piece: str, caps: bool = True) -> str | None:
    """The case marker that goes before the pre-token ``piece``, if any: ``xxup`` for one of two characters or more,
    a letter first, in capitals; else ``xxmaj`` for such a one Capitalised. A contraction (``n't``, ``'s``...) takes
    none: it is the end of the word before it, which carries the marker (``DON'T`` is ``xxup do n't``). With
    ``caps=False`` only ``xxmaj`` is given, as ``replace_maj`` alone gives it (``A1`` too, which is ``xxup`` else).

    >>> _case_marker("WOW"), _case_marker("Hello"), _case_marker("McDonald"), _case_marker("I"), _case_marker("N'T")
    ('xxup', 'xxmaj', None, None, None)
    """
    if len(piece) < 2 or not piece[0].isalpha() or piece.lower() in _CONTRACTIONS:
        return None
    if caps and piece.isupper():
        return TK_UP
    return TK_MAJ if piece[0].isupper() and piece[1:] == piece[1:].lower() else None


def apply_rules(piece: str) -> list[str]:
    """Case markers (:func:`_case_marker`), lower-casing and repetition for one pre-token.

    >>> apply_rules("Hello"), apply_rules("WOW"), apply_rules("!!!!"), apply_rules("I"), apply_rules("N'T")
    (['xxmaj', 'hello'], ['xxup', 'wow'], ['xxrep', '4', '!'], ['i'], ["n't"])
    """
    marker = _case_marker(piece)
    return ([marker] if marker else []) + _split_reps(piece.lower())


def _is_panic(e: BaseException) -> bool:
    """A Rust panic in the tokenizers library: pyo3's ``PanicException``, a ``BaseException`` (not an ``Exception``,
    so ``except Exception`` lets it through)."""
    return type(e).__name__ == "PanicException" and not isinstance(e, (Exception, KeyboardInterrupt, SystemExit,
                                                                        GeneratorExit))


def library_encode(encode: Callable[[list[str]], list[Any]], texts: list[str], owner: str,
                   noun: str = "text") -> list[Any]:
    """``encode(texts)``, a call into the tokenizers library, with a panic there (its regex engine gives up on a
    text, say) raised as a :class:`DataError` naming the first of ``texts`` it panics on; an interrupt passes
    through untouched.

    >>> library_encode(lambda b: [len(t) for t in b], ["ab", "c"], "Tokenizer")
    [2, 1]
    """
    try:
        return encode(texts)
    except BaseException as e:
        if not _is_panic(e):
            raise
        first = e
    for i, text in enumerate(texts):  # only after a panic: find the text to name
        try:
            encode([text])
        except BaseException as e:
            if not _is_panic(e):
                raise
            raise DataError(f"{owner}: the tokenizers library failed on {noun} {i} ({text[:80]!r}, {len(text):,} "
                            f"characters): {str(e)[:200]}; check the tokenizer's patterns, or shorten or leave out "
                            f"that {noun}") from None
    raise DataError(f"{owner}: the tokenizers library failed on {len(texts):,} {noun}s taken together "
                    f"({str(first)[:200]})") from None


def rules_flag(rules: Any, who: str) -> Any:
    """``rules`` as a :class:`Tokenizer` takes it: ``None`` (fastai's default) and the book's own list
    (``defaults.text_proc_rules``, or the same functions in its order) are the book's rules, ``True``. The rules are
    one fixed set, applied in one pass over a whole corpus, so any other list is refused saying what to do; any
    other value is returned for the caller's check to judge.

    >>> from pipekit.text import defaults
    >>> rules_flag(None, "Tokenizer"), rules_flag(list(defaults.text_proc_rules), "Tokenizer"), rules_flag(False, "x")
    (True, True, False)
    """
    if rules is None:
        return True
    if isinstance(rules, (list, tuple)):  # fastai's L too, a list
        from pipekit.text.rules import defaults  # rules.py describes the rules with this module's pieces

        given = list(rules)
        if given == list(defaults.text_proc_rules):
            return True
        names = [getattr(f, "__name__", repr(f)) for f in given]
        none = (" (an empty list, fastai's spelling of no rules, is rules=False, add_bos=False: fastai's xxbos comes "
                "from its lowercase rule)") if not given else ""
        raise ParameterError(f"{who}: rules={names} is not accepted: pipekit applies the book's rules "
                             f"({[f.__name__ for f in defaults.text_proc_rules]}) as one fixed set, in one pass over "
                             f"the whole corpus, so a list of its own cannot choose or add rules{none}; pass "
                             f"rules=None (or True) for the book's rules, or rules=False for none and apply your own "
                             f"rules to the texts before tokenizing")
    return rules


class Tokenizer(Transform):
    """Texts -> tokens with the book's rules (``xxbos``, ``xxmaj``, ``xxup``, ``xxrep``, ``xxwrep`` ...).

    ``mode``: "word" (rules + word pieces, nothing to fit), "bpe" or "unigram" (a subword model with
    ``vocab_sz`` entries trained by ``setup`` on the training texts). ``rules=False`` keeps the raw
    pieces (no case markers, no lower-casing, no repetition tokens, no HTML fixes); ``rules=None`` (fastai's
    default) and the book's list ``defaults.text_proc_rules`` are ``rules=True``. The rules are one fixed set:
    another list is refused (:func:`rules_flag`).

    >>> tok = Tokenizer()
    >>> tok.tokenize("I don't like it!!! SO boring.")
    ['xxbos', 'i', 'do', "n't", 'like', 'it', 'xxrep', '3', '!', 'xxup', 'so', 'boring', '.']
    >>> tok.decode(tok.tokenize("It's GREAT, isn't it?"))
    "It's GREAT, isn't it?"
    """

    param_constraints = {"mode": Options("word", "bpe", "unigram"),
                         # room for the special tokens and at least one more
                         "vocab_sz": Interval(len(SPECIAL_TOKENS) + 1, None, integer=True, none_ok=True),
                         "rules": Options(True, False), "add_bos": Options(True, False), "add_eos": Options(True, False)}

    #: whether this is a tokenizer without the rules that ``Tokenizer(tok)`` turns into one with them, as the
    #: book's ``Tokenizer(WordTokenizer())`` (see :mod:`pipekit.text.base_tokenizers`)
    is_base_tokenizer: ClassVar[bool] = False
    #: ``units_`` is what the subword model was trained on and is applied to: "words" (the word tokens) or
    #: "chunks" (the raw text's whitespace-separated chunks, what a model without the rules is set up on now). A
    #: subword model saved without the field was trained on the words, and keeps giving the tokens it gave.
    record_defaults = {"state.units_": "words"}

    def __init__(self, mode: str | Tokenizer = "word", vocab_sz: int | None = None,
                 rules: bool | Sequence[Callable[..., Any]] | None = True, add_bos: bool = True, add_eos: bool = False):
        rules = rules_flag(rules, "Tokenizer")  # fastai's rules=None, or the book's list, is rules=True
        if isinstance(mode, Tokenizer):
            mode, vocab_sz = _mode_of(mode, vocab_sz)
        elif not isinstance(mode, str):
            raise ParameterError(f"Tokenizer: mode={mode!r:.40} ({type(mode).__name__}) is not a mode; give 'word', "
                                 f"'bpe' or 'unigram', or, as in the book, WordTokenizer() or "
                                 f"SubwordTokenizer(vocab_sz=...)")
        self.mode, self.vocab_sz, self.rules, self.add_bos, self.add_eos = mode, vocab_sz, rules, add_bos, add_eos
        self.check_params()
        if mode == "word" and vocab_sz is not None:
            raise ParameterError("vocab_sz is only used by subword modes ('bpe', 'unigram'); for mode='word' limit "
                                 "the vocabulary with Numericalize(max_vocab=...)")
        self._pre = pre_tokenizers.Split(Regex(_PIECE_PATTERN), behavior="isolated")
        self._memo: dict[str, list[str]] = {}
        self._sub: _HFTokenizer | None = None

    # -- fitting ---------------------------------------------------------------------------------------
    def setup(self, texts: Any) -> None:
        """Train the subword model on ``texts`` (the training split, or its files); nothing to learn in word
        mode."""
        if self.mode == "word":
            return
        self._train(as_text_series(read_text_files(texts)), "words" if self.rules else "chunks")

    def _train(self, s: pl.Series, units: str) -> None:
        """Train the subword model on the ``units`` ("words" or "chunks", see :meth:`_subword_units`) of ``s``."""
        words = self._subword_units(s, units)
        counts = words.counts()
        keep = [(w, int(c)) for w, c in zip(words.vocab, counts) if c > 0 and w not in SPECIAL_TOKENS]
        if not keep:
            raise DataError("cannot train a subword model: the training texts contain no words")
        vocab_sz = self.vocab_sz or 8000
        tk = _HFTokenizer(models.BPE(unk_token=UNK) if self.mode == "bpe" else models.Unigram())
        tk.pre_tokenizer, tk.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
        opts: dict[str, Any] = dict(vocab_size=vocab_sz, special_tokens=SPECIAL_TOKENS, show_progress=False)
        trainer = (trainers.BpeTrainer(**opts) if self.mode == "bpe"
                   else trainers.UnigramTrainer(unk_token=UNK, **opts))
        # each word repeated by its count: the trainer sees the corpus statistics without one string per text
        tk.train_from_iterator(((w + " ") * c for w, c in keep), trainer, length=len(keep))
        learnt = tk.get_vocab_size()
        if self.vocab_sz is not None and learnt < self.vocab_sz:
            # the trainer stops when the texts hold no more pieces worth keeping, without a word
            warn(f"{type(self).__name__}: the {len(words):,} training texts gave {learnt:,} subword pieces, not the "
                 f"vocab_sz={self.vocab_sz:,} asked for; set it up on more text, or ask for a smaller vocab_sz "
                 f"(at most {learnt:,} for these texts)")
        self.state_from_data({"subword_": tk.to_str(), "units_": units})

    def cache_settings(self) -> dict[str, Any]:
        """What identifies this tokenizer's output in the token cache (its settings, which a base tokenizer
        fixes rather than takes as parameters)."""
        return {"mode": self.mode, "vocab_sz": self.vocab_sz, "rules": self.rules, "add_bos": self.add_bos,
                "add_eos": self.add_eos, "rules_version": RULES_VERSION}

    def state_from_data(self, state: dict[str, Any]) -> None:
        """A subword model (the tokenizers library's JSON) goes through the checks an ``HFTokenizer``'s tokenizer
        does (:func:`pipekit.text.hf_tokenizer.load_checked`): one read from a file may hold any normalizer or
        pattern."""
        from pipekit.text.hf_tokenizer import load_checked

        subword = state.get("subword_")
        if subword is not None and not isinstance(subword, str):
            raise FieldError("state.subword_", f"must be the subword model's JSON text, got {type(subword).__name__}")
        if state and not subword:  # a fitted record (an unfitted one's state is empty)
            self._refuse_missing_model()
        if "units_" in state and state["units_"] not in _UNITS:
            raise FieldError("state.units_", f"must be one of {_UNITS} (what the subword model was trained on), got "
                                             f"{state['units_']!r:.40}")
        try:
            sub = load_checked(subword)[0] if subword else None
        except DataError as e:
            raise FieldError("state.subword_", f"is not a subword model pipekit accepts: {e}") from None
        super().state_from_data(state)
        self._sub = sub
        self._memo = {}

    def _refuse_missing_model(self) -> None:
        mode = getattr(self, "mode", "word")  # an HFTokenizer's model is its tokenizer, checked as it is read
        if mode in ("bpe", "unigram"):
            raise FieldError("state.subword_", f"is missing: Tokenizer(mode={mode!r}) splits texts with the subword "
                                               "model that setup learned, which a fitted record holds; the file is "
                                               "damaged or was not written by pipekit: save or export it again")

    def check_fitted_state(self) -> None:
        """Refuse, with a :class:`FieldError` naming ``state.subword_``, a tokenizer read from a file as the fitted one
        (a fitted recipe's) whose mode needs a subword model it does not hold. An unfitted tokenizer's record has an
        empty state, which :meth:`state_from_data` accepts: only the recipe holding it knows it must be fitted."""
        if self._sub is None:
            self._refuse_missing_model()

    # -- encoding --------------------------------------------------------------------------------------
    def _chunk_tokens(self, chunk: str) -> list[str]:
        toks = self._memo.get(chunk)  # the tokens of the current rules (see _tokens_of_chunks)
        if toks is None:
            if chunk[0] == " ":  # xxwrep's count, which no text chunk can be (chunks hold no spaces): no rules
                return [chunk[1:]]
            if chunk[0] == "\n" or (chunk.isalpha() and chunk.islower() and not _RE_REP.search(chunk)):
                toks = [chunk]  # a newline run or a plain lower-case word: nothing to split or mark
            else:
                pieces = [p for p, _ in self._pre.pre_tokenize_str(chunk)]
                toks = [t for p in pieces for t in apply_rules(p)] if self.rules else pieces
            if len(self._memo) >= _MEMO_MAX:  # bound memory on endless streams of new text
                self._memo.clear()
            self._memo[chunk] = toks
        return toks

    def _tokens_of_chunks(self, chunk_strs: list[str]) -> pl.Series:
        """Token lists of distinct chunks. Plain words, Capitalised words and either with one trailing
        punctuation mark (most chunks) are done by Polars expressions; the rest go through the
        ``tokenizers`` pre-tokenizer and the rules, once each. The tokens remembered for a chunk are those of the
        rules they were made with: changing ``rules`` on the tokenizer (``tok.rules = False``) starts a new memo.

        >>> tok = Tokenizer()
        >>> tok("Hello WORLD's end")
        ['xxbos', 'xxmaj', 'hello', 'xxup', 'world', "'s", 'end']
        >>> tok.rules = False
        >>> tok("Hello WORLD's end")
        ['xxbos', 'Hello', 'WORLD', "'s", 'end']
        """
        if getattr(self, "_memo_rules", None) != self.rules:
            self._memo, self._memo_rules = {}, self.rules
        df = pl.DataFrame({"c": pl.Series(chunk_strs, dtype=pl.String)})
        if self.rules and len(df):
            c, low = pl.col("c"), pl.col("c").str.to_lowercase()
            plain = ~low.str.contains(_ASCII_TRIPLES)  # no xxrep inside
            word, last = low.str.slice(0, low.str.len_chars() - 1), c.str.slice(-1)
            fast = (pl.when(c.str.contains(r"^[a-z]+$") & plain).then(pl.concat_list([c]))
                    .when(c.str.contains(r"^[A-Z][a-z]+$") & plain).then(pl.concat_list([pl.lit(TK_MAJ), low]))
                    .when(c.str.contains(r"^[a-z]+[.,!?;:]$") & plain).then(pl.concat_list([word, last]))
                    .when(c.str.contains(r"^[A-Z][a-z]+[.,!?;:]$") & plain)
                    .then(pl.concat_list([pl.lit(TK_MAJ), word, last])).otherwise(None))
            toks = df.select(fast.alias("t")).to_series()
        else:
            toks = pl.Series("t", [None] * len(df), dtype=pl.List(pl.String))
        rest = toks.is_null().arg_true()
        if len(rest):
            lists = [self._chunk_tokens(chunk_strs[i]) for i in rest.to_list()]
            offs = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int32)
            # via Arrow offsets: building a list Series from Python lists element by element is slow
            slow = pl.Series("t", pa.ListArray.from_arrays(pa.array(offs), pa.array(
                [t for x in lists for t in x], pa.string()))).cast(pl.List(pl.String))
            done = pl.DataFrame({"i": pl.int_range(len(toks), eager=True, dtype=pl.UInt32), "t": toks})
            toks = (pl.concat([done.filter(pl.col("t").is_not_null()), pl.DataFrame({"i": rest, "t": slow})])
                    .sort("i").get_column("t"))
        return toks

    @property
    def units(self) -> str:
        """What the subword model is applied to: "words" or "chunks" (see ``record_defaults``); before ``setup``,
        what it will be trained on."""
        if self._sub is None:
            return "words" if self.rules else "chunks"
        return str(getattr(self, "units_", self.record_defaults["state.units_"]))

    def _subword_units(self, s: pl.Series, units: str) -> TokenizedTexts:
        """What a subword model is trained on and applied to, one unit at a time: ``units="words"``, the word
        tokens (after the rules when there are rules), or ``"chunks"``, the whitespace-separated chunks of the
        raw text, as SentencePiece sees a text (``▁`` marks the space before each chunk, and a word keeps the
        punctuation written against it). Splitting the raw text into words first would hide from the trainer
        how often a word occurs inside other chunks, and the unigram model then learns common words such as
        ``this`` in two pieces; a model trained on words is still applied to words, so its tokens stay those
        it was trained to give."""
        if units == "words":
            return self._encode_words(s)
        uniq, codes, n_chunks = _chunk_codes(_normalize_text(s))
        return self.with_markers(uniq.to_list(), codes, np.concatenate([[0], np.cumsum(n_chunks)]))

    def _encode_words(self, s: pl.Series) -> TokenizedTexts:
        s = _normalize_text(s)
        if self.rules:
            s = _unescape_entities(s.str.replace_many([a for a, _ in HTML_FIXES], [b for _, b in HTML_FIXES]))
        uniq, codes, n_chunks = _chunk_codes(s)
        chunk_strs = uniq.to_list()
        doc_of = np.repeat(np.arange(len(s), dtype=np.int64), n_chunks)
        if self.rules:
            codes, doc_of, chunk_strs = self._word_repeats(codes, doc_of, chunk_strs)
        # distinct chunk -> token list, then expand over the corpus with one gather
        per_chunk = self._tokens_of_chunks(chunk_strs)
        lens = per_chunk.list.len().to_numpy().astype(np.int64)
        tok_vocab, flat_tok_arr = _factorize(per_chunk.explode())
        tok_index = {t: i for i, t in enumerate(tok_vocab.to_list())}
        starts = np.cumsum(lens) - lens
        ids = flat_tok_arr[ragged_positions(starts[codes], lens[codes])]
        per_doc = np.bincount(doc_of, weights=lens[codes], minlength=len(s)).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(per_doc)])
        return self.with_markers(list(tok_index), ids, offsets)

    def _word_repeats(self, codes: np.ndarray, doc_of: np.ndarray, chunk_strs: list[str]):
        """Runs of the same word chunk (3+) -> ``xxwrep n word`` (vectorised; the book's replace_wrep)."""
        if len(codes) < 3:
            return codes, doc_of, chunk_strs
        same = (codes[1:] == codes[:-1]) & (doc_of[1:] == doc_of[:-1])
        starts = np.flatnonzero(np.concatenate([[True], ~same]))
        run_len = np.diff(np.concatenate([starts, [len(codes)]]))
        is_word = np.fromiter((bool(_RE_WORD.match(c)) for c in chunk_strs), dtype=bool, count=len(chunk_strs))
        long = (run_len >= 3) & is_word[codes[starts]]
        if not long.any():
            return codes, doc_of, chunk_strs
        chunk_strs = list(chunk_strs)
        index = {c: i for i, c in enumerate(chunk_strs)}
        def code_of(c: str) -> int:
            if c not in index:
                index[c] = len(chunk_strs)
                chunk_strs.append(c)
            return index[c]
        keep = np.ones(len(codes), dtype=bool)
        codes = codes.copy()
        wrep = code_of(TK_WREP)
        for st, n in zip(starts[long], run_len[long]):
            word = codes[st]
            codes[st], codes[st + 1], codes[st + 2] = wrep, code_of(f" {int(n)}"), word
            keep[st + 3:st + n] = False
        return codes[keep], doc_of[keep], chunk_strs

    def with_markers(self, vocab: list[str], ids: np.ndarray, offsets: np.ndarray) -> TokenizedTexts:
        """Token ids of each document (``ids[offsets[i]:offsets[i + 1]]``, positions in ``vocab``) with
        ``xxbos`` before and ``xxeos`` after each one as ``add_bos``/``add_eos`` ask; a marker missing from
        ``vocab`` is appended to it."""
        index = {t: i for i, t in enumerate(vocab)}
        for t, on in ((BOS, self.add_bos), (EOS, self.add_eos)):
            if on and t not in index:
                index[t] = len(vocab)
                vocab.append(t)
        if self.add_bos:
            ids = np.insert(ids, offsets[:-1], index[BOS])
            offsets = offsets + np.arange(len(offsets))
        if self.add_eos:
            ids = np.insert(ids, offsets[1:], index[EOS])
            offsets = offsets + np.arange(len(offsets))
        return TokenizedTexts(vocab, ids.astype(np.int32), offsets.astype(np.int64))

    @overload
    def encode(self, texts: str) -> list[str]: ...
    @overload
    def encode(self, texts: Any) -> TokenizedTexts: ...

    def encode(self, texts: Any) -> TokenizedTexts | list[str]:
        """Tokens of one text (a str gives its list of tokens, as ``tok(text)`` does in fastai), or of many
        (a list, NumPy array or Polars Series of texts gives a :class:`TokenizedTexts`).

        >>> tok = Tokenizer()
        >>> tok("A GOOD film.")
        ['xxbos', 'a', 'xxup', 'good', 'film', '.']
        >>> many = tok(["A GOOD film.", "Bad."])
        >>> len(many), many[1]
        (2, ['xxbos', 'xxmaj', 'bad', '.'])
        """
        if isinstance(texts, (str, os.PathLike)):
            return self.encode_texts(read_text_files([texts]))[0]
        if not isinstance(texts, Iterable):
            raise ParameterError(f"{type(self).__name__} takes a text (str) or a list of texts (a list, NumPy array "
                                 f"or Polars Series of str), got {type(texts).__name__}")
        return self.encode_texts(read_text_files(texts))

    @classmethod
    def from_folder(cls, path: str | os.PathLike | None = None, **kwargs: Any) -> Tokenizer:
        """A tokenizer for the text files of a folder, as the book's ``Tokenizer.from_folder(path)``: given files
        (``pathlib.Path`` items, such as ``get_text_files(path)``'s, in ``TfmdLists(files, [Tokenizer.from_folder(
        path), Numericalize])``) it tokenizes what each holds (:func:`read_text_file`). ``kwargs`` as
        :class:`Tokenizer`'s.

        >>> _ = Path("/tmp/pk_review.txt").write_text("A GOOD film.", encoding="utf-8")
        >>> Tokenizer.from_folder("/tmp")(Path("/tmp/pk_review.txt"))
        ['xxbos', 'a', 'xxup', 'good', 'film', '.']
        """
        return cls(**kwargs)

    @classmethod
    def from_df(cls, text_cols: Any, tok: Tokenizer | None = None, rules: Any = None, sep: str = " ",
                **kwargs: Any) -> Tokenizer:
        """The tokenizer for the text column(s) ``text_cols`` of a table, as fastai's ``Tokenizer.from_df``: ``tok``
        (None: the word tokenizer; ``WordTokenizer()`` or ``SubwordTokenizer(vocab_sz=...)`` gets the rules on top)
        with ``rules`` (None: the book's; see :func:`tokenizer_for`). It tokenizes the texts it is given: the
        columns are read by the block's getter, ``TextBlock(tok=Tokenizer.from_df('text'))`` with
        ``get_x=ColReader('text')``, or ``TextBlock.from_df(text_cols)``, which names them once. ``kwargs`` are
        ``tokenize_df``'s ``n_workers``, ``mark_fields`` and ``tok_text_col``, as :func:`check_table_args` takes
        them; ``sep`` is fastai's glue for showing tokens, and only its default is taken (pipekit decodes tokens
        to readable text).

        >>> Tokenizer.from_df("text")("A GOOD film.")
        ['xxbos', 'a', 'xxup', 'good', 'film', '.']
        """
        table_args = ["n_workers", "mark_fields", "tok_text_col"]
        unknown = sorted(set(kwargs) - set(table_args))
        if unknown:
            known = ["text_cols", "tok", "rules", "sep", *table_args]
            raise ParameterError(f"Tokenizer.from_df: unknown argument(s) {unknown}; "
                                 f"{unknown_names(unknown, known, 'arguments')}")
        if sep != " ":
            raise ParameterError(f"Tokenizer.from_df: sep={sep!r} is not supported: pipekit decodes tokens to readable "
                                 "text (tok.decode(tokens)) rather than joining them with sep; leave sep out")
        check_table_args("Tokenizer.from_df", text_cols, **kwargs)
        return tokenizer_for(tok, rules, "Tokenizer.from_df")

    def encode_texts(self, texts: Any) -> TokenizedTexts:
        """Tokenize a sequence of texts (list, NumPy array or Polars Series) into a :class:`TokenizedTexts`."""
        s = as_text_series(texts)
        if self.mode == "word":
            return self._encode_words(s)
        if self._sub is None:
            raise NotFittedError(f"Tokenizer(mode={self.mode!r}) is not fitted; call setup(train_texts) first "
                                 "(TextBlock does this on the training split)")
        words = self._subword_units(s, self.units)
        # subword pieces per distinct word, computed in parallel by the tokenizers library
        plain = [w for w in words.vocab if w not in SPECIAL_TOKENS]
        sub = self._sub
        encs = library_encode(lambda b: sub.encode_batch(b, add_special_tokens=False), plain,
                              f"Tokenizer(mode={self.mode!r})", "word") if plain else []
        piece_lists = dict(zip(plain, (e.tokens for e in encs)))
        piece_index: dict[str, int] = {}
        lens = np.empty(len(words.vocab), dtype=np.int64)
        flat: list[int] = []
        for k, w in enumerate(words.vocab):
            pieces = [w] if w in SPECIAL_TOKENS else piece_lists[w]
            lens[k] = len(pieces)
            flat += [piece_index.setdefault(p, len(piece_index)) for p in pieces]
        starts = np.cumsum(lens) - lens
        ids = np.asarray(flat, dtype=np.int64)[ragged_positions(starts[words.ids], lens[words.ids])]
        tok_lens = lens[words.ids]
        csum = np.concatenate([[0], np.cumsum(tok_lens)])
        return TokenizedTexts(list(piece_index), ids.astype(np.int32), csum[words.offsets].astype(np.int64))

    def tokenize(self, text: str) -> list[str]:
        """Tokens of one text."""
        if not isinstance(text, str):
            raise ParameterError(f"tokenize takes one str, got {type(text).__name__}; use encode() for many texts")
        return self.encode_texts([text])[0]

    # -- decoding --------------------------------------------------------------------------------------
    @overload
    def decode(self, tokens: TokenizedTexts | list[list[str]]) -> list[str]: ...
    @overload
    def decode(self, tokens: Sequence[str]) -> str: ...

    def decode(self, tokens: Any) -> Any:
        """Readable text from tokens: case markers applied, repetitions expanded, spacing restored. Many texts'
        tokens (a :class:`TokenizedTexts`, or one list per text, what ``Numericalize.decode`` gives for many)
        give one text each.

        >>> tok = Tokenizer()
        >>> tok.decode([["xxbos", "xxmaj", "so", "good", "!"], ["xxbos", "xxup", "bad"]])
        ['So good!', 'BAD']
        """
        if isinstance(tokens, TokenizedTexts) or (isinstance(tokens, (list, tuple)) and tokens
                                                  and all(isinstance(t, (list, tuple)) for t in tokens)):
            return [self.decode_text(list(t)) for t in tokens]
        return self.decode_text(tokens)

    def decode_text(self, tokens: Sequence[str]) -> str:
        """One text from its tokens (what :meth:`decode` does for each text; a tokenizer of another kind
        overrides this)."""
        if self.mode == "word":
            return decode_words(list(tokens))
        words = _merge_subwords(tokens)
        # a model applied to chunks gives pieces that merge back into the text's own whitespace-separated chunks
        return _join_chunks(words) if self.units == "chunks" else decode_words(words)


#: fastai's ``n_workers``: pipekit takes it and has no use for it (see :func:`check_table_args`)
_WORKERS = Interval(0, None, integer=True, none_ok=True)


def tokenizer_for(tok: Tokenizer | None, rules: Any, who: str) -> Tokenizer:
    """The tokenizer fastai's ``(tok, rules)`` pair names: ``tok`` None is the word tokenizer; a base tokenizer
    (``WordTokenizer()``, ``SubwordTokenizer(vocab_sz=...)``) gets the rules on top, as ``Tokenizer(tok)`` does;
    ``rules`` None (or the book's list) is the book's rules and ``False`` none (:func:`rules_flag`). A full
    :class:`Tokenizer` is used as it is, and refuses ``rules`` other than its own.

    >>> from pipekit.text import WordTokenizer
    >>> tokenizer_for(WordTokenizer(), None, "tokenize_texts")("Hello WORLD")
    ['xxbos', 'xxmaj', 'hello', 'xxup', 'world']
    """
    flag = rules_flag(rules, who)
    if tok is None:
        return Tokenizer("word", rules=flag)
    if not isinstance(tok, Tokenizer):
        raise ParameterError(f"{who}: tok={tok!r:.60} ({type(tok).__name__}) is not a pipekit tokenizer; give "
                             "WordTokenizer(), SubwordTokenizer(vocab_sz=...) or a Tokenizer")
    if tok.is_base_tokenizer:
        return Tokenizer(tok, rules=flag)
    own = getattr(tok, "rules", None)
    if rules is not None and flag != own:
        raise ParameterError(f"{who}: rules={rules!r:.60} differs from the rules of the tokenizer given "
                             f"(tok={type(tok).__name__}(..., rules={own})); give rules to that tokenizer, or leave "
                             "rules out")
    return tok


def check_table_args(who: str, text_cols: Any, mark_fields: bool | None = None, n_workers: int | None = None,
                     tok_text_col: str = "text") -> None:
    """fastai's arguments about a table's texts, refused where pipekit cannot do what they ask.

    ``n_workers`` is taken and has no effect: pipekit tokenizes a whole corpus in one process, each distinct chunk of
    text once, with the splitting and counting in Polars' and the tokenizers library's threads, so there are no
    worker processes to count. ``mark_fields``: pipekit puts ``xxfld <n>`` before the text of each of several
    columns and no marker before a single column's, fastai's default (None); the other two choices are refused.
    ``tok_text_col`` is the column fastai writes a table's tokens to and reads them back from; pipekit keeps the
    tokens in its token cache and reads the texts from their own column(s), so only the default, ``"text"``, is taken.

    >>> check_table_args("TextBlock.from_df", ["title", "text"], mark_fields=False)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: TextBlock.from_df: mark_fields=False with several text columns ['title', 'text'] is not supported: pipekit marks the text of each column with xxfld <n> (fastai's default for several columns), so that a model can tell the columns apart; leave mark_fields out, or join the columns into one text column first (df['text'] = df['title'] + ' ' + df['text'])
    """
    check(who, n_workers=(n_workers, _WORKERS), mark_fields=(mark_fields, Options(None, True, False)))
    cols = list(text_cols) if isinstance(text_cols, (list, tuple)) else [text_cols]
    if mark_fields is not None and mark_fields != (len(cols) > 1):
        if len(cols) > 1:
            join = " + ' ' + ".join(f"df[{c!r}]" for c in cols)
            raise ParameterError(f"{who}: mark_fields=False with several text columns {cols} is not supported: pipekit "
                                 f"marks the text of each column with xxfld <n> (fastai's default for several "
                                 f"columns), so that a model can tell the columns apart; leave mark_fields out, or "
                                 f"join the columns into one text column first (df['text'] = {join})")
        raise ParameterError(f"{who}: mark_fields=True with one text column is not supported: pipekit puts xxfld "
                             f"markers only between several columns (fastai's default); leave mark_fields out")
    if tok_text_col != "text":
        raise ParameterError(f"{who}: tok_text_col={tok_text_col!r:.60} is not supported: fastai writes a table's "
                             f"tokens to that column and reads them back from it, where pipekit keeps the tokens in "
                             f"its token cache and reads the texts from their own column(s); leave tok_text_col out")


def tokenize_texts(texts: Any, n_workers: int | None = None, rules: Any = None,
                   tok: Tokenizer | None = None) -> list[list[str]]:
    """fastai's ``tokenize_texts``: the tokens of each text, one list per text. ``tok`` and ``rules`` as
    :func:`tokenizer_for` takes them (None and None: the word tokenizer with the book's rules); a subword
    tokenizer not yet set up is set up on ``texts``. ``n_workers`` has no effect (:func:`check_table_args`).

    >>> tokenize_texts(["Hello World", "Two"])
    [['xxbos', 'xxmaj', 'hello', 'xxmaj', 'world'], ['xxbos', 'xxmaj', 'two']]
    """
    check("tokenize_texts", n_workers=(n_workers, _WORKERS))
    return list(_tokenized(texts, tok, rules, "tokenize_texts"))


def _tokenized(texts: Any, tok: Tokenizer | None, rules: Any, who: str) -> TokenizedTexts:
    """``texts`` tokenized by :func:`tokenizer_for`'s tokenizer, a subword one set up on them first when it is not."""
    s = as_text_series(read_text_files(texts), who)
    tk = tokenizer_for(tok, rules, who)
    if getattr(tk, "mode", "word") in ("bpe", "unigram") and not tk.is_fitted:
        tk.setup(s)
    return tk.encode_texts(s)


def tokenize_df(df: Any, text_cols: Any, n_workers: int | None = None, rules: Any = None,
                mark_fields: bool | None = None, tok: Tokenizer | None = None,
                tok_text_col: str = "text") -> tuple[Any, Counter[str]]:
    """fastai's ``tokenize_df``: the texts of ``df[text_cols]`` tokenized, as ``(table, counts)``. ``table`` is
    ``df`` without its text columns, with ``tok_text_col`` (each row's tokens, a list of str) and
    ``<tok_text_col>_length`` (how many) after the other columns; ``counts`` is a ``Counter`` of every token. A
    pandas frame gives a pandas frame; a Polars one (or any table ``to_items`` reads) a Polars one.

    ``text_cols``: a column (name or position) or a list of them. Several are joined into one text per row, each
    column's text after ``xxfld <n>`` when ``mark_fields`` (default: when there are several; a missing field is
    empty); a missing text in a single column is refused by row. ``tok`` and ``rules`` as :func:`tokenize_texts`;
    ``n_workers`` has no effect (:func:`check_table_args`).

    >>> import polars as pl
    >>> table = pl.DataFrame({"label": ["pos", "neg"], "text": ["A GOOD film.", "Dull film."]})
    >>> out, counts = tokenize_df(table, "text")
    >>> out.columns, out["text"][1].to_list(), out["text_length"].to_list(), counts["film"]
    (['label', 'text', 'text_length'], ['xxbos', 'xxmaj', 'dull', 'film', '.'], [6, 5], 2)
    """
    from pipekit.data.items import table_column, to_items

    who = "tokenize_df"
    check(who, n_workers=(n_workers, _WORKERS), mark_fields=(mark_fields, Options(None, True, False)),
          tok_text_col=(tok_text_col, Is(lambda c: isinstance(c, str) and c != "", "a column name")))
    frame = to_items(df)
    given = list(text_cols) if isinstance(text_cols, (list, tuple)) else [text_cols]
    if not given:
        raise ParameterError(f"{who}: text_cols is empty; name the column(s) holding the texts")
    names = list(dict.fromkeys(table_column(frame, c, "text_cols") for c in given))
    mark = len(names) > 1 if mark_fields is None else mark_fields
    if len(names) == 1:
        texts = as_text_series(frame[names[0]], f"{who}: column {names[0]!r}")
        if mark:
            texts = f"{FLD} 1 " + texts
    else:
        texts = frame.select(pl.concat_str([(pl.lit(f"{FLD} {i + 1} " if mark else "")
                                             + pl.col(n).cast(pl.String).fill_null(""))
                                            for i, n in enumerate(names)], separator=" ")).to_series()
    others = [c for c in frame.columns if c not in names]
    for col in (tok_text_col, f"{tok_text_col}_length"):
        if col in others:
            raise ParameterError(f"{who}: the table has a column {col!r} that is not among text_cols={names}, and the "
                                 f"tokens would replace it; pass another tok_text_col, or drop or rename that column")
    tokens = _tokenized(texts, tok, rules, who)
    values = pa.array(tokens.vocab, pa.string()).take(pa.array(tokens.ids, pa.int32()))
    lists = pl.Series(tok_text_col, pa.LargeListArray.from_arrays(pa.array(tokens.offsets, pa.int64()), values))
    lengths = pl.Series(f"{tok_text_col}_length", tokens.lengths, dtype=pl.Int64)
    counts = Counter({t: int(c) for t, c in zip(tokens.vocab, tokens.counts()) if c})
    if is_pandas(df, "DataFrame"):  # the frame given, its other columns as they were (by position, as read)
        keep = [i for i, c in enumerate(frame.columns) if c in others]
        out = df.iloc[:, keep].copy()
        out[tok_text_col] = lists.to_list()
        out[lengths.name] = lengths.to_numpy()
        return out, counts
    return frame.select(others).with_columns(lists.cast(pl.List(pl.String)), lengths), counts


def _mode_of(tok: Tokenizer, vocab_sz: int | None) -> tuple[str, int | None]:
    """The mode and subword vocabulary size that ``Tokenizer(tok)`` takes from the book's base tokenizer ``tok``."""
    if not tok.is_base_tokenizer:
        raise ParameterError(f"Tokenizer: mode={type(tok).__name__}(...) is a full tokenizer already: use it as it "
                             f"is; Tokenizer(tok) takes the book's WordTokenizer() or SubwordTokenizer(vocab_sz=...)")
    if tok.is_fitted:
        warn(f"Tokenizer({type(tok).__name__}(...)): the {type(tok).__name__} given is set up already, and Tokenizer "
             "takes only its mode and vocab_sz: it trains a model of its own at setup (with the rules), so the one "
             "trained is not used; to tokenize with that one, call it itself (tok(texts))")
    if vocab_sz is not None and tok.vocab_sz is not None and vocab_sz != tok.vocab_sz:
        raise ParameterError(f"Tokenizer: vocab_sz={vocab_sz} differs from the {type(tok).__name__}'s "
                             f"vocab_sz={tok.vocab_sz}; give it once")
    return tok.mode, tok.vocab_sz if vocab_sz is None else vocab_sz


def _chunk_codes(s: pl.Series) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """The whitespace-separated chunks of the texts ``s``: the distinct chunks, each chunk's code into them (all
    texts' chunks in order) and the number of chunks of each text."""
    chunks = s.str.extract_all(_CHUNK_PATTERN)
    n_chunks = chunks.list.len().fill_null(0).to_numpy().astype(np.int64)
    uniq, codes = _factorize(chunks.explode().drop_nulls())
    return uniq, codes, n_chunks


def _merge_subwords(pieces: Iterable[str]) -> list[str]:
    """Subword pieces ('▁hel', 'lo') -> words; a leading '▁' starts a word, special tokens stand alone."""
    words: list[str] = []
    open_word = False  # whether the next piece may continue words[-1]
    for p in pieces:
        special = p in SPECIAL_TOKENS
        if open_word and not special and not p.startswith("\u2581"):
            words[-1] += p
        else:
            words.append(p if special else p.lstrip("\u2581"))
        open_word = not special
    return [w for w in words if w != ""]


def _join_chunks(chunks: Sequence[str]) -> str:
    """A text's whitespace-separated chunks (what a subword model without the rules encodes) -> the text, its
    runs of spaces as one space and no space around a line break, as SentencePiece decodes.

    >>> _join_chunks(["xxbos", "Great", "film,", "\\n\\n", "(really)."])
    'Great film,\\n\\n(really).'
    """
    out: list[str] = []
    glue = True  # no space before the next chunk
    for c in chunks:
        if c in (BOS, EOS, PAD):
            continue
        out.append(c if glue or c.startswith("\n") else " " + c)
        glue = c.startswith("\n")
    return "".join(out)


def decode_words(tokens: Sequence[str]) -> str:
    """Word-level tokens -> text: case markers applied, repetitions expanded, spacing restored.

    >>> decode_words(['xxbos', 'xxmaj', 'it', "'s", 'xxup', 'so', 'good', 'xxrep', '3', '!'])
    "It's SO good!!!"
    >>> decode_words(Tokenizer().tokenize("Sooo goood, a MUST MUST MUST see. Mmmm hmmm"))
    'Sooo goood, a MUST MUST MUST see. Mmmm hmmm'
    >>> decode_words(['xxbos', 'xxfld', '1', 'xxmaj', 'great', 'xxfld', '2', 'loved', 'it'])  # two text columns
    'xxfld 1 Great xxfld 2 loved it'
    >>> decode_words(['xxbos', 'hero', 'xxrep', 'at', 'xxwrep', '²', 'yes'])  # markers of no run (a model's sample)
    'hero at ² yes'

    Decoding the tokens of a text gives the text back, except for what the tokenizer leaves out by design:

    - spacing: a run of spaces is one space, none is kept around line breaks, and punctuation is spaced
      the English way (no space before ``.,!?;:)]}%``, the Devanagari danda ``।`` and contractions such as ``n't``,
      none after ``([{$#``), with no space on either side of Chinese and Japanese full-width punctuation
      (``。，！？、「」``, U+3001-U+303F and U+FF01-U+FFEE);
    - case: the rules mark Capitalised and ALL-CAPS words of two or more letters, so other words
      (``McDonald``, ``iPhone``, ``3D``) and one-letter capitals come back lower-case, but for a lone ``i``,
      which comes back as ``I``;
    - the HTML fixes (``<br />`` is a line break, ``&amp;`` is ``&``...);
    - where a word ends next to a run of a repeated character (``xxrep``), which the tokens do not say: a
      run joins the letters before it (``g`` + ``ooo``) unless they are a short word of their own (``at www``),
      and one or two letters after it (``+ d``) unless they start another run or are a short word (``sooo
      is``); a longer word after a run starts a new word (``sooo bad``, so ``Asssociated`` comes back as
      ``Asss ociated``), and so does a run after a word that was only a run (``aaaa bbbb``);
    - a contraction's case: ``'ll`` is lower-cased without a marker, and written in capitals only after an
      ALL-CAPS word (``YOU'VE``, ``WOULDN'T'VE``; ``I'LL`` comes back as ``I'll``).

    Runs add at most :data:`MAX_RUN_CHARS` characters to one text; a run past that is written as its tokens:

    >>> decode_words(['xxbos', 'hello', 'xxrep', '1234567890', 'a', 'world'])
    'hello xxrep 1234567890 a world'
    """
    out: list[str] = []
    budget = _RunBudget()
    case = None
    glue = True  # no space before the next word
    out_up = False  # the last word was marked ALL-CAPS
    i, n = 0, len(tokens)
    while i < n:
        t = tokens[i]
        if t in (BOS, EOS, PAD, "xxfake"):
            i += 1
            continue
        if t in (TK_MAJ, TK_UP):
            case = t
            i += 1
            continue
        if t == FLD:  # a field of a text of several columns, numbered: kept as the tokenized text wrote it
            field = f"{FLD} {tokens[i + 1]}" if i + 1 < n and tokens[i + 1].isdecimal() else FLD
            i += 1 + (field != FLD)
            out.append(field if glue else " " + field)
            case, glue = None, False
            continue
        if t == TK_WREP and i + 2 < n and tokens[i + 1].isdecimal():  # a count int() reads ('²' is a digit)
            count_text, i = tokens[i + 1], i + 2
            if tokens[i] in (TK_MAJ, TK_UP) and i + 1 < n:  # the repeated word's own case marker
                case, i = tokens[i], i + 1
            word, i = _word(tokens, i, case is not None, budget)
            if word is None and _rep_at(tokens, i):  # a run of a character past the budget, repeated: as written
                word, i = " ".join(tokens[i:i + 3]), i + 3
            elif word is None:
                word, i = tokens[i], i + 1
            word = _cased(word, case)
            count = budget.take(count_text, len(word) + 1)
            run = f"{TK_WREP} {count_text} {word}" if count is None else " ".join([word] * count)
            out.append(("" if glue else " ") + run)
            case, glue = None, False
            continue
        word, j = _word(tokens, i, case is not None, budget)
        if word is not None:
            # the rules lower-case a lone "I" without a marker (one letter); English wants it back
            word = "I" if word == "i" and case is None else _cased(word, case)
            out.append(word if glue else " " + word)
            out_up = case == TK_UP and any(c.isalpha() for c in word)
            case, glue, i = None, False, j
            continue
        i += 1
        if _rep_at(tokens, i - 1):  # a run of punctuation (alphanumeric runs are words above)
            count_text, what = tokens[i], tokens[i + 1]
            count = budget.take(count_text, len(what))
            i += 2
            out.append(what * count if count is not None else ("" if glue else " ") + f"{TK_REP} {count_text} {what}")
            glue = False
            continue
        if t in (TK_REP, TK_WREP):  # a marker of no run (not before a count and what repeats: a sampled text's)
            continue
        # a contraction of an ALL-CAPS word is lower-cased without a marker of its own: YOU 've -> YOU'VE; the word
        # stays ALL-CAPS for the contraction after it (WOULD n't 've -> WOULDN'T'VE)
        caps = case is None and t in _CONTRACTIONS and out_up
        word = t.upper() if caps else _cased(t, case)
        case, out_up = None, caps
        if t.startswith("\n"):
            out.append(t)
            glue = True
            continue
        wide = _RE_WIDE_PUNCT.match(t) is not None  # 。，「」: no space on either side
        attach = glue or wide or t in _NO_SPACE_BEFORE
        out.append(word if attach else " " + word)
        glue = wide or t in _NO_SPACE_AFTER
    return "".join(out).strip(" ")


#: short words that stand alone next to a run of a repeated character ("sooo is", "at www"): never part of its word
_STANDALONE_SHORT = {"a", "i", "an", "as", "at", "be", "by", "do", "go", "he", "if", "in", "is", "it", "me", "my",
                     "no", "of", "oh", "ok", "on", "or", "so", "to", "up", "us", "we"}
#: short words that a run after them does not continue ("at www"; but "do iii ng" is "doiiing", "i eeee" "ieeee")
_STANDALONE_BEFORE_RUN = _STANDALONE_SHORT - {"i", "do"}


class _RunBudget:
    """The characters that runs may still add to one decoded text (:data:`MAX_RUN_CHARS`, read when made)."""

    def __init__(self) -> None:
        self.left = MAX_RUN_CHARS

    def take(self, count: str, unit: int) -> int | None:
        """The run's count (a decimal string) when its ``count * unit`` characters fit in what is left, taken from
        it; None when they do not (a count of more than 18 digits never does, and int() refuses 4,301 digits)."""
        if len(count) > 18:
            return None
        n = int(count)
        if self.left is not None:
            if n * unit > self.left:
                return None
            self.left -= n * unit
        return n


def _rep_at(tokens: Sequence[str], i: int) -> bool:
    """Whether ``tokens[i:i + 3]`` is ``xxrep n c``."""
    return (i + 2 < len(tokens) and tokens[i] == TK_REP and tokens[i + 1].isdecimal()
            and tokens[i + 2] not in SPECIAL_TOKENS)


def _is_piece(t: str) -> bool:
    return t not in SPECIAL_TOKENS and _RE_WORD.match(t) is not None


def _word(tokens: Sequence[str], i: int, marked: bool = False,
          budget: _RunBudget | None = None) -> tuple[str | None, int]:
    """The word starting at ``tokens[i]`` (letters, digits and runs of them: ``g xxrep 3 o d`` -> ``goood``) and
    the index after it; ``(None, i)`` when no word starts there. ``marked``: a case marker came before it (so it
    is one word of two letters or more: ``xxmaj a xxrep 3 s`` is ``Asss``). See :func:`decode_words` for how
    the end of a word next to a run is told. ``budget``: what runs may still add (:data:`MAX_RUN_CHARS`); the
    word ends before a run that would pass it."""
    budget = _RunBudget() if budget is None else budget
    parts: list[str] = []
    starts_with_run = last_run = False
    n = len(tokens)
    while i < n:
        if _rep_at(tokens, i) and _is_piece(tokens[i + 2]):
            if last_run and starts_with_run:  # "aaaa bbbb": a word that is only a run ends at the next run
                break
            if parts == [tokens[i - 1]] and parts[0] in _STANDALONE_BEFORE_RUN and not marked:  # "at www"
                break
            count = budget.take(tokens[i + 1], len(tokens[i + 2]))
            if count is None:  # written as its tokens by decode_words
                break
            if not parts:
                starts_with_run = True
            parts.append(tokens[i + 2] * count)
            i, last_run = i + 3, True
            continue
        t = tokens[i]
        if not _is_piece(t):
            break
        if parts:  # after a run: the end of this word, or a new word?
            if (not last_run or len(t) > 2 or t in _STANDALONE_SHORT
                    or (_rep_at(tokens, i + 1) and _is_piece(tokens[i + 3]))):
                break
        parts.append(t)
        i, last_run = i + 1, False
    return ("".join(parts), i) if parts else (None, i)


def _cased(word: str, case: str | None) -> str:
    if word in SPECIAL_TOKENS:
        return word
    if case == TK_UP:
        return word.upper()
    if case == TK_MAJ:
        return word[:1].upper() + word[1:]
    return word
