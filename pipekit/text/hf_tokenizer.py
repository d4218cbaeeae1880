"""A trained Hugging Face ``tokenizers`` tokenizer as the tokenizer of a ``TextBlock``.

``HFTokenizer`` takes a ``tokenizer.json`` file, its JSON text or a ``tokenizers.Tokenizer``, and tokenizes
with it as it was trained (its own normaliser, pre-tokenizer and model; pipekit's ``xxmaj``/``xxup`` rules
are not applied, the tokenizer never saw them). The texts are encoded by the library in parallel in Rust;
``xxbos`` (and ``xxeos``) are added as pipekit's models expect, and ``Numericalize`` builds the ids from
the tokens as for any tokenizer (give ``TextBlock(min_freq=1)`` to keep every piece the tokenizer makes).

Exports keep the tokenizer as data: a record stores the tokenizer's JSON (a data format the ``tokenizers``
library reads, no code), so a saved block or learner needs neither the file nor the object it was built
from. A tokenizer is checked when it is read: its steps before the model (normaliser, pre-tokenizer) and
after it (post-processor) may make a text at most :data:`MAX_GROWTH` times longer together, and so may its
decoder, each with at most :data:`MAX_STEPS` steps of the kinds the library documents (see
:func:`text_growth`), so a small file cannot chain steps that multiply a text's length until the process
runs out of memory; and the regular expressions of its ``Split`` and ``Replace`` steps must be ones whose
matching time is bounded (:mod:`pipekit.text.regex_check`), so a file cannot make one text take minutes.

Example:
    >>> import tokenizers
    >>> from pipekit.text import HFTokenizer
    >>> tk = tokenizers.Tokenizer(tokenizers.models.WordPiece(unk_token="[UNK]"))
    >>> tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    >>> tk.train_from_iterator(["a good film", "a bad film", "good fun"], tokenizers.trainers.WordPieceTrainer(
    ...     vocab_size=60, special_tokens=["[UNK]"], show_progress=False))
    >>> HFTokenizer(tk).tokenize("a good film")
    ['xxbos', 'a', 'good', 'film']
"""
from __future__ import annotations

import base64
import json
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tokenizers import Tokenizer as _Library

from pipekit.core.errors import DataError, ExportError, ParameterError
from pipekit.core.validate import Is, Options
from pipekit.data.cache import fingerprint
from pipekit.text.regex_check import MAX_PATTERN, check_pattern, min_chars
from pipekit.text.tokenize import BOS, EOS, PAD, UNK, TokenizedTexts, Tokenizer, as_text_series, library_encode

__all__ = ["HFTokenizer", "load_checked"]


#: largest tokenizer JSON accepted: Hugging Face's largest published tokenizers (250k-token multilingual
#: vocabularies) are 17-35 MB; the library's parsed form takes several times the text
MAX_JSON_BYTES = 64 << 20
#: highest token id accepted, as a multiple of the number of tokens: ids index a list of the tokens, so ids
#: far past the vocabulary's size would size that list instead of the file (trained vocabularies are dense)
ID_SLACK, ID_EXTRA = 2, 256
#: longest padding the tokenizer may apply to a text (pipekit pads its batches itself; the library's own padding
#: builds every encoding at this length)
MAX_PAD = 8192
#: longest word a WordPiece model may split into pieces (BERT's is 100; a longer word is one unknown token): the
#: library's longest-match search takes time growing with the cube of a word's length, 15 s for one 10,000-character
#: word, under a millisecond for a 200-character one
MAX_WORD_CHARS = 200


#: most a tokenizer's steps may lengthen a text: its normaliser, pre-tokenizer and post-processor together, and its
#: decoder on its own. Real tokenizers stay below: BERT 3 (Chinese characters get spaces around them), GPT-2 15 (a
#: character's UTF-8 bytes each shown as a character, and a space before each piece), T5, ALBERT and XLM-R 36
#: (SentencePiece's table writes U+FDFA as 18 characters, and Metaspace adds its mark before each piece)
MAX_GROWTH = 64
#: most steps (Sequence members, nested ones included) in each of normalizer, pre_tokenizer, post_processor and
#: decoder; and how deep Sequences may nest
MAX_STEPS, MAX_NESTING = 32, 8
#: the component types of the ``tokenizers`` library and how much each can lengthen a text by itself: a number, or
#: a function of the step's JSON (see :func:`_factor`). Unicode normalisation, case and accent steps count 1: on
#: the text a user gives they expand a character a bounded number of times (at most 18, NFKD of U+FDFA), and they
#: do not compound, because what other steps add is counted at its longest normalised form (:func:`_longest`).
_KINDS: dict[str, dict[str, Any]] = {
    "normalizer": {"NFC": 1, "NFD": 1, "NFKC": 1, "NFKD": 1, "Lowercase": 1, "StripAccents": 1, "Strip": 1,
                   "Nmt": 1, "BertNormalizer": "bert", "Replace": "replace", "Prepend": "prepend",
                   "ByteLevel": "bytes", "Precompiled": "precompiled"},
    "pre_tokenizer": {"Whitespace": 1, "WhitespaceSplit": 1, "BertPreTokenizer": 1, "Punctuation": 1, "Digits": 1,
                      "UnicodeScripts": 1, "CharDelimiterSplit": 1, "Split": 1, "FixedLength": 1,
                      "ByteLevel": "bytes", "Metaspace": "metaspace"},
    "post_processor": {"ByteLevel": 1, "BertProcessing": 1, "RobertaProcessing": 1, "TemplateProcessing": "template"},
    "decoder": {"ByteLevel": 1, "ByteFallback": 1, "Fuse": 1, "Strip": 1, "Metaspace": 1, "WordPiece": 2,
                "BPEDecoder": "suffix", "CTC": "ctc", "Replace": "replace"},
}
_MEMBERS = {"normalizer": "normalizers", "pre_tokenizer": "pretokenizers", "post_processor": "processors",
            "decoder": "decoders"}


def _longest(text: str) -> int:
    """The characters ``text`` can become under the Unicode steps (compatibility decomposition, lower case)."""
    return len(unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).lower()))


def _replaced(content: str, least: int) -> float:
    """How much replacing matches of at least ``least`` characters by ``content`` can lengthen a text."""
    longest = _longest(content)
    return max(1.0, longest / least) if least else 1.0 + longest


def _pattern_min_chars(pattern: Any) -> int:
    if isinstance(pattern, dict) and set(pattern) == {"String"} and isinstance(pattern["String"], str):
        return len(pattern["String"])
    if isinstance(pattern, dict) and set(pattern) == {"Regex"} and isinstance(pattern["Regex"], str):
        return min_chars(pattern["Regex"])
    return 0


def _precompiled_growth(charsmap: Any) -> float:
    """The longest replacement (in characters, at its longest normalised form) a SentencePiece character map can
    write for one character, after checking that every lookup in its trie stays inside it and every replacement it
    names starts a character of its table (the library indexes both unchecked)."""
    try:
        blob = base64.b64decode(charsmap, validate=True)
    except (TypeError, ValueError):
        raise ValueError("its precompiled_charsmap is not base64") from None
    if len(blob) < 4:
        raise ValueError("its precompiled_charsmap is shorter than its header")
    size = int.from_bytes(blob[:4], "little")
    if size % 4 or size < 4 or 4 + size > len(blob):
        raise ValueError(f"its precompiled_charsmap says its trie has {size:,} bytes, in {len(blob) - 4:,}")
    units = np.frombuffer(blob[4:4 + size], dtype="<u4").astype(np.int64)
    table = blob[4 + size:]
    try:
        table.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("its precompiled_charsmap's replacements are not UTF-8") from None

    def offset(u: np.ndarray) -> np.ndarray:
        return (u >> 10) << ((u & (1 << 9)) >> 6)

    labels = np.arange(1, 256, dtype=np.int64)
    seen = np.zeros(len(units), dtype=bool)
    nodes, leaves = np.array([0], dtype=np.int64), []
    while len(nodes):  # breadth first over the trie, as the library walks it for any input bytes
        seen[nodes] = True
        base = nodes ^ offset(units[nodes])
        if (base | 0xFF).max() >= len(units):
            raise ValueError("its precompiled_charsmap's trie points outside itself")
        kids = (base[:, None] ^ labels[None, :])
        match = (units[kids] & ((1 << 31) | 0xFF)) == labels[None, :]
        kids = kids[match]
        leaf = ((units[kids] >> 8) & 1) == 1
        leaves.append(kids[leaf] ^ offset(units[kids[leaf]]))
        nodes = np.unique(kids[~seen[kids]])
    starts = np.unique(units[np.concatenate(leaves)] & ((1 << 31) - 1)) if leaves else np.zeros(0, np.int64)
    bad = [int(v) for v in starts if v > len(table) or (v < len(table) and 0x80 <= table[v] < 0xC0)]
    if bad:
        raise ValueError(f"its precompiled_charsmap names replacement offset {bad[0]:,}, not the start of a character "
                         f"of its {len(table):,}-byte table")
    ends = {int(v): table.find(b"\0", int(v)) for v in starts}
    return max([1.0] + [float(_longest(table[v:e if e >= 0 else len(table)].decode("utf-8"))) for v, e in ends.items()])


def _factor(kind: str, spec: dict[str, Any]) -> float:
    """How much one step (not a Sequence) can lengthen a text, from its JSON."""
    how = _KINDS[kind][spec["type"]]
    if not isinstance(how, str):
        return float(how)
    text = {k: v for k, v in spec.items() if isinstance(v, str)}
    if how == "replace":
        if not isinstance(spec.get("content"), str):
            raise ValueError("its content is not text")
        return _replaced(spec["content"], _pattern_min_chars(spec.get("pattern")))
    if how == "prepend":  # once per piece of the text, and a piece may be one character
        return 1.0 + _longest(text.get("prepend", ""))
    if how == "bytes":  # each character's UTF-8 bytes as characters (up to 4), and a space before each piece
        each = max(_longest(c) for c in _byte_alphabet())
        return 4.0 * each + (each if spec.get("add_prefix_space") else 0)
    if how == "metaspace":  # spaces become the mark, and the mark goes before each piece
        mark = _longest(text.get("replacement", "")) or 1
        return float(mark) + (mark if spec.get("prepend_scheme", "always") != "never" else 0)
    if how == "bert":  # spaces around each Chinese character
        return 3.0 if spec.get("handle_chinese_chars", True) else 1.0
    if how == "precompiled":
        return _precompiled_growth(spec.get("precompiled_charsmap"))
    if how == "template":  # a template may repeat a sequence; special tokens are not added (add_special_tokens=False)
        counts = [sum(1 for piece in spec.get(t) or [] if isinstance(piece, dict) and
                      isinstance(piece.get("Sequence"), dict) and piece["Sequence"].get("id") == seq)
                  for t in ("single", "pair") for seq in ("A", "B")]
        return float(max([1, *counts]))
    if how == "suffix":  # each suffix becomes a space; an empty one puts a space after every character
        return 1.0 if text.get("suffix") else 2.0
    if how == "ctc":  # the word delimiter becomes a space
        return 1.0 if text.get("word_delimiter_token") else 2.0
    raise ValueError(f"unknown growth rule {how!r}")


def _byte_alphabet() -> list[str]:
    from tokenizers import pre_tokenizers

    return pre_tokenizers.ByteLevel.alphabet()


def _steps(kind: str, spec: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each step (not a Sequence) of one of a tokenizer's components (``kind``: normalizer, pre_tokenizer,
    post_processor or decoder; ``spec``: its JSON, None for none) and where it is, as ``kind.members[i]...``.
    Raises ValueError, naming the step, for a malformed step, more than MAX_STEPS steps or Sequences nested more
    than MAX_NESTING deep."""
    count = 0

    def walk(node: Any, where: str, depth: int) -> Iterator[tuple[str, dict[str, Any]]]:
        nonlocal count
        if node is None:
            return
        if depth > MAX_NESTING:
            raise ValueError(f"{where}: Sequences nested more than {MAX_NESTING} deep")
        if not (isinstance(node, dict) and isinstance(node.get("type"), str)):
            raise ValueError(f"{where}: a step is stored as {{'type': name, ...}}")
        if node["type"] == "Sequence":
            members = node.get(_MEMBERS[kind])
            if not isinstance(members, list):
                raise ValueError(f"{where}: a Sequence lists its steps in {_MEMBERS[kind]!r}")
            for i, m in enumerate(members):
                yield from walk(m, f"{where}.{_MEMBERS[kind]}[{i}]", depth + 1)
            return
        count += 1
        if count > MAX_STEPS:
            raise ValueError(f"{where}: more than {MAX_STEPS} steps")
        yield where, node

    return walk(spec, kind, 0)


def text_growth(kind: str, spec: Any) -> tuple[float, list[str]]:
    """How many times one of a tokenizer's components (``kind``: normalizer, pre_tokenizer, post_processor or
    decoder; ``spec``: its JSON, None for none) can lengthen a text, and the steps that do (as ``where xN``).
    Raises ValueError, naming the step, for a type pipekit does not know, more than MAX_STEPS steps or Sequences
    nested more than MAX_NESTING deep."""
    total, steps = 1.0, []
    for where, node in _steps(kind, spec):  # a Sequence lengthens a text by the product of its steps
        if node["type"] not in _KINDS[kind]:
            raise ValueError(f"{where} has type {node['type'][:60]!r}, not one of the {kind} steps pipekit knows "
                             f"(how much it lengthens a text): {', '.join(sorted(_KINDS[kind]))}")
        try:
            f = _factor(kind, node)
        except ValueError as e:
            raise ValueError(f"{where} ({node['type']}): {e}") from None
        if f > 1:
            steps.append(f"{where} ({node['type']}) x{f:g}")
        total *= f
    return total, steps


def _component_json(tk: _Library, kind: str) -> Any:
    part = getattr(tk, kind)
    if part is None:
        return None
    try:
        return json.loads(part.__getstate__())
    except Exception as e:  # a step written in Python (custom) has no JSON: it could not be saved either
        raise ValueError(f"{kind}: {str(e)[:200]}") from None


def _components(tk: _Library) -> dict[str, Any]:
    """The JSON of the tokenizer's normalizer, pre_tokenizer, post_processor and decoder, as the library read them."""
    try:
        return {kind: _component_json(tk, kind) for kind in _MEMBERS}
    except ValueError as e:
        raise DataError(f"HFTokenizer: tokenizer: {e}") from None


def _check_growth(specs: dict[str, Any]) -> None:
    """The tokenizer's steps may lengthen a text at most MAX_GROWTH times."""
    try:
        found = {kind: text_growth(kind, spec) for kind, spec in specs.items()}
    except ValueError as e:
        raise DataError(f"HFTokenizer: tokenizer: {e}") from None
    for kinds in (("normalizer", "pre_tokenizer", "post_processor"), ("decoder",)):
        growth = float(np.prod([found[k][0] for k in kinds]))
        if growth > MAX_GROWTH:
            steps = [s for k in kinds for s in found[k][1]]
            raise DataError(f"HFTokenizer: tokenizer: its {' and '.join(kinds)} can make a text {growth:,.0f} times "
                            f"longer, over the {MAX_GROWTH} accepted: {'; '.join(steps)[:600]}")


def _check_patterns(specs: dict[str, Any]) -> None:
    """The patterns of Split and Replace steps, which the library matches with a backtracking engine, may take only a
    bounded time on a text (:func:`pipekit.text.regex_check.check_pattern`)."""
    for kind, spec in specs.items():
        for where, node in _steps(kind, spec):
            pattern = node.get("pattern") if node["type"] in ("Split", "Replace") else None
            if not isinstance(pattern, dict):
                continue
            text = pattern.get("Regex", pattern.get("String"))
            if not isinstance(text, str):
                continue
            try:
                if "Regex" in pattern:
                    check_pattern(text)
                elif len(text) > MAX_PATTERN:
                    raise ValueError(f"it has {len(text):,} characters, over the {MAX_PATTERN:,} accepted")
            except ValueError as e:
                raise DataError(f"HFTokenizer: tokenizer: {where} ({node['type']}): the pattern {text[:120]!r} is not "
                                f"accepted: {e}") from None


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
    except BaseException as e:  # the library reports malformed JSON and unknown components as plain exceptions,
        # and some malformed values (a character map that is not base64) as a Rust panic, a BaseException
        if isinstance(e, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        raise DataError(f"HFTokenizer: {where} is not a tokenizer the tokenizers library can read "
                        f"({str(e)[:300]})") from None


def _vocab_list(tk: _Library) -> list[str]:
    """The tokens by id; ids must stay near the number of tokens (the list is as long as the highest id). An id no
    token has (a vocabulary with tokens taken out) holds a placeholder of its own, ``xxgap`` and the id, unlike every
    token, so the list names each token once, as a token cache entry does, and the ids stay the tokenizer's.

    >>> import tokenizers
    >>> _vocab_list(tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0, "good": 1, "xxgap3": 4},
    ...                                                              unk_token="[UNK]")))
    ['[UNK]', 'good', 'xxgap2', 'xxgap3_', 'xxgap3']
    """
    vocab = tk.get_vocab(with_added_tokens=True)
    if not vocab:
        return []
    top = max(vocab, key=vocab.__getitem__)
    limit = ID_SLACK * len(vocab) + ID_EXTRA
    if vocab[top] >= limit:
        raise DataError(f"HFTokenizer: tokenizer: token {top[:40]!r} has id {vocab[top]:,}, but the tokenizer has "
                        f"{len(vocab):,} tokens; ids must be below {limit:,} ({ID_SLACK} x the tokens + {ID_EXTRA})")
    out: list[str | None] = [None] * (vocab[top] + 1)
    for token, i in vocab.items():
        out[i] = token
    return [t if t is not None else _gap_name(i, vocab) for i, t in enumerate(out)]


def _gap_name(i: int, vocab: dict[str, int]) -> str:
    """The placeholder of id ``i``, which no token of ``vocab`` has: ``xxgap{i}``, with ``_`` added while a token is
    named so (the names of other ids differ by their number)."""
    name = f"xxgap{i}"
    while name in vocab:
        name += "_"
    return name


def _check_lengths(tk: _Library) -> None:
    """The library's own padding and truncation, which set how long each encoding is built: a fixed padding
    length (or multiple) is allocated for every text, and a truncation stride makes overlapping pieces of a
    long text (pipekit reads only the first); and the longest word a WordPiece model searches for its pieces."""
    word = getattr(tk.model, "max_input_chars_per_word", None)
    if isinstance(word, int) and word > MAX_WORD_CHARS:
        raise DataError(f"HFTokenizer: tokenizer: its WordPiece model has max_input_chars_per_word={word:,}, over the "
                        f"{MAX_WORD_CHARS} accepted (BERT's is 100: finding a word's pieces takes time growing with "
                        "the cube of its length)")
    pad = tk.padding or {}
    for key in ("length", "pad_to_multiple_of"):
        if (pad.get(key) or 0) > MAX_PAD:
            raise DataError(f"HFTokenizer: tokenizer: its padding has {key}={pad[key]:,}, over the {MAX_PAD:,} tokens "
                            "accepted (pipekit pads batches itself: tokenizer.no_padding() turns the library's off)")
    trunc = tk.truncation or {}
    if trunc.get("stride"):
        raise DataError(f"HFTokenizer: tokenizer: its truncation has stride={trunc['stride']:,}; pipekit reads one "
                        "piece of each text, so give a stride of 0 (or tokenizer.no_truncation())")


def load_checked(source: Any) -> tuple[_Library, list[str]]:
    """The tokenizer ``source`` names (a ``tokenizers.Tokenizer``, a tokenizer.json path, its JSON text or that text
    as UTF-8 bytes), with its tokens by id, refused with a :class:`DataError` unless its ids, padding, truncation,
    growth of a text and regular expressions are within pipekit's bounds. Every tokenizer pipekit reads from a file
    goes through this: an ``HFTokenizer``'s and a subword ``Tokenizer``'s learned model.

    >>> load_checked('{"model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"}, '
    ...              '"normalizer": {"type": "Replace", "pattern": {"Regex": "(a+)+$"}, "content": "x"}}')
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipekit.core.errors.DataError: HFTokenizer: tokenizer: normalizer (Replace): the pattern '(a+)+$' is not ...
    """
    tk = _load(source)
    vocab = _vocab_list(tk)
    _check_lengths(tk)
    specs = _components(tk)
    _check_growth(specs)
    _check_patterns(specs)
    return tk, vocab


class HFTokenizer(Tokenizer):
    """Texts -> tokens with a trained Hugging Face tokenizer (see the module docstring).

    ``tokenizer``: a ``tokenizers.Tokenizer``, the path of its ``tokenizer.json``, or that file's text.
    ``add_bos`` / ``add_eos`` put ``xxbos`` / ``xxeos`` around each text (the tokenizer's own special
    tokens are not added: pipekit's models use their own).

    >>> import tokenizers
    >>> from pipekit.text import HFTokenizer
    >>> tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="[UNK]"))
    >>> tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    >>> tk.train_from_iterator(["a good film", "a bad film", "good fun"],
    ...                        tokenizers.trainers.WordLevelTrainer(special_tokens=["[UNK]"], show_progress=False))
    >>> tok = HFTokenizer(tk, add_eos=True)
    >>> tok.tokenize("a good play")                  # 'play' was never seen: the tokenizer's own [UNK]
    ['xxbos', 'a', 'good', '[UNK]', 'xxeos']
    >>> tok.decode_text(["xxbos", "good", "fun", "xxeos"])
    'good fun'
    """

    param_constraints = {"tokenizer": Is(_is_source, "a tokenizers.Tokenizer, the path of a tokenizer.json or its "
                                                     "JSON text"),
                         "add_bos": Options(True, False), "add_eos": Options(True, False)}
    record_defaults: ClassVar[dict[str, Any]] = {}  # no subword model of pipekit's own, so no units_ to default

    def __init__(self, tokenizer: Any, add_bos: bool = True, add_eos: bool = False):
        self.tokenizer, self.add_bos, self.add_eos = tokenizer, add_bos, add_eos
        self.check_params()
        self._tk: _Library | None = None
        self._vocab: list[str] = []
        # a path given as text is neither read nor tested until the tokenizer is first used (setup, encoding): a
        # record rebuilt from a file (which holds only text, never a Path) restores its state first, and is refused
        # there, with one message whether the path names a file on this machine or not
        if not _is_path_text(tokenizer):
            self._library()
        self._memo: dict[str, list[str]] = {}
        self._sub = None
        self._unk: tuple[str | None] | None = None  # the tokenizer's own unknown token, read at the first decode

    def _library(self) -> _Library:
        """The tokenizer, read and checked on first use."""
        if self._tk is None:
            self._tk, self._vocab = load_checked(self.tokenizer)
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
        """Nothing to learn: the tokenizer was trained before; a tokenizer given as a path is read (and checked) here,
        so a path that is no tokenizer.json is named as the data is built."""
        self._library()

    def encode_texts(self, texts: Any) -> TokenizedTexts:
        """Tokenize many texts (one call into the library, parallel in Rust)."""
        s = as_text_series(texts)
        tk = self._library()
        # encode_batch_fast (tokenizers 0.20 and later) skips the character offsets, which are not kept; the ids are
        # encode_batch's, which older releases have alone
        batch = getattr(tk, "encode_batch_fast", None) or tk.encode_batch
        encs = library_encode(lambda b: batch(b, add_special_tokens=False), s.to_list(),
                              "HFTokenizer", "text") if len(s) else []
        lens = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
        ids = np.fromiter((i for e in encs for i in e.ids), dtype=np.int64, count=int(lens.sum()))
        return self.with_markers(list(self._vocab), ids, np.concatenate([[0], np.cumsum(lens)]))

    def _unk_token(self) -> str | None:
        """The tokenizer's own unknown token (WordPiece's ``[UNK]``, a BPE's or Unigram's ``<unk>``), None without one."""
        found = getattr(self, "_unk", None)
        if found is None:
            model = json.loads(self.json()).get("model", {})
            unk = model.get("unk_token")
            if unk is None and isinstance(model.get("unk_id"), int):  # a Unigram model names it by id
                unk = self._library().id_to_token(model["unk_id"])
            found = self._unk = (unk if isinstance(unk, str) else None,)
        return found[0]

    def decode_text(self, tokens: Any) -> str:
        """Text from one text's tokens, by the tokenizer's own decoder; pipekit's markers are dropped and ``xxunk`` is
        written where a token was not in the vocabulary: pipekit's ``xxunk``, a token the tokenizer does not know, and
        the tokenizer's own unknown token (``[UNK]``), which its decoder would leave out as a special token.

        >>> import tokenizers
        >>> tk = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0, "good": 1, "fun": 2}, unk_token="[UNK]"))
        >>> _ = tk.add_special_tokens(["[UNK]"])
        >>> HFTokenizer(tk).decode_text(["xxbos", "good", "[UNK]", "fun"])
        'good xxunk fun'
        """
        tk = self._library()
        unk = self._unk_token()
        parts: list[str] = []
        run: list[int] = []
        for t in tokens:
            if t in (BOS, EOS, PAD):
                continue
            i = tk.token_to_id(t) if t not in (UNK, unk) else None
            if i is None:
                if run:
                    parts.append(tk.decode(run))
                    run = []
                parts.append(UNK if t in (UNK, unk) else str(t))
            else:
                run.append(i)
        if run:
            parts.append(tk.decode(run))
        return " ".join(p for p in parts if p)
