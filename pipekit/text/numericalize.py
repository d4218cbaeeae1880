"""Tokens -> integer ids with a vocabulary learned on the training split only.

The result is an Arrow ``list<int32>`` column (one list of ids per text): language-model streams and
padded classifier batches are slices of its flat value buffer, never Python lists.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, overload

import numpy as np
import pyarrow as pa
import torch

from pipekit.core.errors import DataError, FieldError, ParameterError, warn
from pipekit.core.validate import Interval, Is, check_state
from pipekit.data.transform import Transform
from pipekit.data.vocab import cut_repr
from pipekit.text.tokenize import SPECIAL_TOKENS, UNK, TokenizedTexts

FAKE = "xxfake"
#: the largest share of the training texts' words (tokens with a letter or digit) that may fall outside the
#: vocabulary before ``setup`` warns (imdb_sample's, word tokenizer, min_freq=3: 6%; a Chinese corpus's: 100%)
MAX_UNKNOWN_SHARE = 0.5
# what a Numericalize used before its vocabulary is learned says to call (idx, the training rows, is optional)
_SETUP_CALL = "num.setup(toks) (or num.setup(toks, train_idx): the vocabulary of those texts only)"


def _token_style(words: Sequence[str]) -> tuple[bool, bool]:
    """How a tokenizer wrote ``words`` (tokens holding a letter or digit): whether they are subword pieces (a tenth
    of them or more start with ``\u2581``, the space before a word) and whether they keep capitals (a tenth or more
    hold one, where the rules lower-case every word and mark its case with ``xxmaj``/``xxup``).

    >>> _token_style(["\u2581the", "\u2581film", "s"]), _token_style(["the", "film"]), _token_style(["The", "film"])
    ((True, False), (False, False), (False, True))
    """
    n = max(len(words), 1)
    pieces = sum(w.startswith("\u2581") for w in words)
    capitals = sum(any(c.isupper() for c in w) for w in words)
    return pieces * 10 >= n and pieces > 0, capitals * 10 >= n and capitals > 0


def _describe(style: tuple[bool, bool]) -> str:
    """A :func:`_token_style` in words."""
    return ("subword pieces starting with '\u2581'" if style[0] else "words") + (", capitals kept" if style[1] else
                                                                                ", lower-cased")


class TokenVocab(list[str]):
    """A vocabulary of tokens, in id order: a plain list (indexed, iterated, equal to and stored as the list of its
    tokens) whose repr shows its first and last tokens and its length, as a vocabulary of classes
    (:class:`~pipekit.data.vocab.CategoryMap`) does, so ``dls.vocab`` prints in a line, not every token.
    What :class:`Numericalize` learns (``num.vocab``, ``dls.vocab[0]`` of a text classifier).

    >>> v = TokenVocab(list(SPECIAL_TOKENS) + [f"w{i}" for i in range(100)])
    >>> v
    ['xxunk', 'xxpad', 'xxbos', 'xxeos', 'xxfld', 'xxrep', 'xxwrep', 'xxup', 'xxmaj', 'w0', ..., 'w98', 'w99'] (109 tokens)
    >>> v[9], v == list(v), TokenVocab(["xxunk", "the"])
    ('w0', True, ['xxunk', 'the'])
    """

    #: a vocabulary longer than this shows its first and last tokens only
    SHOWN = 20

    def __repr__(self) -> str:
        return cut_repr(self, self.SHOWN, "tokens")


def check_vocab(vocab: Sequence[str], special_tokens: Sequence[str] = SPECIAL_TOKENS) -> list[str]:
    """Validate a user-given vocabulary: strings, no duplicates, every special token present.

    >>> from pipekit.text import check_vocab
    >>> from pipekit.text import SPECIAL_TOKENS
    >>> vocab = check_vocab(list(SPECIAL_TOKENS) + ["the", "movie"])
    >>> vocab[-2:], len(vocab) == len(SPECIAL_TOKENS) + 2
    (['the', 'movie'], True)
    >>> try:
    ...     check_vocab(["the", "movie"])
    ... except Exception as e:
    ...     print(type(e).__name__, str(e)[:40])
    ParameterError vocab is missing the special tokens ['xx...
    """
    vocab = list(vocab)
    bad = [i for i, t in enumerate(vocab) if not isinstance(t, str)]
    if bad:
        raise ParameterError(f"vocab must hold strings; entry {bad[0]} is {vocab[bad[0]]!r}")
    missing = [t for t in special_tokens if t not in set(vocab)]
    if missing:
        raise ParameterError(f"vocab is missing the special tokens {missing}; put them first, e.g. "
                             f"vocab = SPECIAL_TOKENS + [t for t in vocab if t not in SPECIAL_TOKENS]")
    seen: set[str] = set()
    for t in vocab:
        if t in seen and t != FAKE:  # padding entries may repeat
            raise ParameterError(f"vocab has duplicate entries (first: {t!r}); each token must appear once")
        seen.add(t)
    return vocab


class Numericalize(Transform):
    """Map tokens to ids: special tokens first, then tokens seen at least ``min_freq`` times in the
    training texts, most frequent first (ties in the order the training texts first use them, as fastai's
    ``Counter.most_common``, so the ids are the book's), at most ``max_vocab`` entries, then 1 to 8 ``xxfake``
    entries up to the next multiple of 8 (faster matrix products; 8 when the tokens fill a multiple of 8 already, as
    fastai pads, so the embedding sizes are the book's). Unknown tokens map to ``xxunk`` (id 0).

    The learned vocabulary is ``vocab_``; ``vocab`` reads it as the book does (before ``setup``, the
    vocabulary given as a parameter, or None), and ``o2i`` maps each token to its id. The first argument is the
    vocabulary, as in fastai (``Numericalize(vocab)``): give ``min_freq`` and ``max_vocab`` by name.

    >>> from pipekit.text import Tokenizer
    >>> tt = Tokenizer().encode(["a film", "a good film", "a bad film"])
    >>> num = Numericalize(min_freq=2)
    >>> num.setup(tt)
    >>> num.vocab[:11], len(num.vocab_)
    (['xxunk', 'xxpad', 'xxbos', 'xxeos', 'xxfld', 'xxrep', 'xxwrep', 'xxup', 'xxmaj', 'a', 'film'], 16)
    >>> num.encode(tt).to_pylist()
    [[2, 9, 10], [2, 9, 0, 10], [2, 9, 0, 10]]
    >>> num.decode(num.encode(tt))[1], num.decode([2, 9, 10])
    (['xxbos', 'a', 'xxunk', 'film'], ['xxbos', 'a', 'film'])
    """

    #: the ``vocab`` parameter is kept as ``vocab_arg``: ``vocab`` is the property a reader uses
    param_attrs = {"vocab": "vocab_arg"}
    #: what ``setup`` learns, declared as Categorize declares its own: a fitted recipe read from a file must hold it
    #: (``DataBlock.state_from_data`` refuses a Numericalize of its blocks without it, naming the field), so a file
    #: whose vocab was removed is refused at load and not at the user's predict
    vocab_: list[str]

    param_constraints = {
        "min_freq": Interval(1, None, integer=True),
        # and more entries than the special tokens (checked below, as they are a parameter too)
        "max_vocab": Interval(2, None, integer=True),
        "vocab": Is(lambda v: v is None or isinstance(v, (list, tuple)),
                    "None or a list of tokens (the first argument is the vocab, as in fastai: give min_freq by name)"),
        "special_tokens": Is(lambda v: v is None or isinstance(v, (list, tuple)) and UNK in v,
                             f"None or a list of tokens that includes {UNK!r} (unknown tokens map to it)")}

    def __init__(self, vocab: Sequence[str] | None = None, min_freq: int = 3, max_vocab: int = 60000,
                 special_tokens: Sequence[str] | None = None):
        self.min_freq, self.max_vocab, self.vocab_arg, self.special_tokens = min_freq, max_vocab, vocab, special_tokens
        self.check_params()
        if max_vocab <= len(self.specials):
            raise ParameterError(f"Numericalize: max_vocab={max_vocab} leaves no room past the {len(self.specials)} "
                                 "special tokens")
        if vocab is not None:
            self.vocab_arg = check_vocab(vocab, self.specials)
        self._lookup_cache: tuple[int, dict[str, int]] | None = None
        self._o2i_cache: tuple[int, defaultdict[str, int]] | None = None

    @property
    def o2i(self) -> defaultdict[str, int]:
        """Each token's id, as fastai's ``num.o2i``: a ``defaultdict`` in which a token not in the vocabulary reads
        as 0, the id of ``xxunk`` (``xxfake`` padding entries are left out).

        >>> num = Numericalize(SPECIAL_TOKENS + ["hi"])
        >>> num.o2i["hi"], num.o2i["there"]
        (9, 0)
        """
        lookup = self._lookup()
        key = id(self.vocab_)
        if self._o2i_cache is None or self._o2i_cache[0] != key:
            self._o2i_cache = (key, defaultdict(int, lookup))
        return self._o2i_cache[1]

    @property
    def vocab(self) -> list[str] | None:
        """The vocabulary (a :class:`TokenVocab`): the learned ``vocab_`` after ``setup``, before it the one given (or
        None)."""
        learned = vars(self).get("vocab_")
        if learned is not None:
            return learned
        return TokenVocab(self.vocab_arg) if self.vocab_arg is not None else None

    def state_from_data(self, state: dict[str, Any]) -> None:
        """A learned vocab read from a file must be what ``setup`` makes: tokens (text), each once, the special
        tokens among them (unknown words map to ``xxunk``), and the vocab given as the parameter when there is one.
        An empty state is an unfitted Numericalize's record; a fitted recipe holding one is refused by the recipe,
        which finds the declared ``vocab_`` missing."""
        if state:
            check_state(state, "Numericalize, to turn tokens into ids,",
                        vocab_=Is(lambda v: isinstance(v, list), "a list of tokens"))
            try:
                check_vocab(state["vocab_"], self.specials)
            except ParameterError as e:
                raise FieldError("state.vocab_", f"is not a vocabulary Numericalize can use: {e}") from None
            if self.vocab_arg is not None and state["vocab_"] != list(self.vocab_arg):
                raise FieldError("state.vocab_", "must be the vocab given as the parameter, as fitting keeps it")
            state = {**state, "vocab_": TokenVocab(state["vocab_"])}  # stored as the plain list: read back as setup makes it
        super().state_from_data(state)

    @property
    def specials(self) -> list[str]:
        return list(SPECIAL_TOKENS if self.special_tokens is None else self.special_tokens)

    def setup(self, tokens: TokenizedTexts | Sequence[Sequence[str]], idx: np.ndarray | None = None) -> None:
        """Learn the vocabulary from the texts at ``idx`` (the training split; all when None): a
        :class:`TokenizedTexts` (``tkn(texts)``) or one token list per text (``[tkn(t) for t in texts]``).

        A vocabulary given to ``__init__`` is kept as is (it belongs to a pretrained model); ``setup`` warns when most
        of the training words are not in it, saying whether it was learned on the tokens of another tokenizer or is
        small, or learned on other texts."""
        tokens = self._training_tokens(tokens)
        if self.vocab_arg is not None:
            self.vocab_ = TokenVocab(self.vocab_arg)
            counts = np.bincount(tokens.subset_ids(idx), minlength=len(tokens.vocab))
            self._warn_unknown(tokens.vocab, counts, set(self.vocab_arg) - {FAKE}, set(self.specials), given=True)
            return
        ids = tokens.subset_ids(idx)
        counts = np.bincount(ids, minlength=len(tokens.vocab))
        # where each token is first used in the training texts (in their order): it orders tokens of equal counts
        seen, at = np.unique(ids, return_index=True)
        first = np.full(len(tokens.vocab), len(ids), dtype=np.int64)
        first[seen] = at
        specials = self.specials
        cand = sorted((-int(c), int(f), t) for t, c, f in zip(tokens.vocab, counts, first)
                      if c >= self.min_freq and t not in specials)
        if not cand:
            words = [int(c) for t, c in zip(tokens.vocab, counts) if t not in specials]
            n_texts = len(tokens) if idx is None else len(np.asarray(idx).reshape(-1))
            if n_texts and not any(words):
                raise DataError(f"Numericalize: the {n_texts:,} training texts hold no words (no token but the special "
                                f"tokens: each text is empty or blank), so there is nothing to learn a vocabulary "
                                f"from; check that the text column holds the texts (its name, and that the texts were "
                                f"read) and that the training rows are the ones with text")
            if not n_texts and len(tokens.vocab):
                raise DataError(f"Numericalize: idx selects none of the {len(tokens):,} texts, so there are no training "
                                f"texts to learn a vocabulary from; give the positions of the training texts as idx")
            if len(tokens.vocab):
                raise DataError(f"Numericalize: no token appears min_freq={self.min_freq} times in the training texts "
                                f"(the most frequent appears {max(words, default=0)} times), so every word would be "
                                f"{UNK!r}; lower min_freq")
        vocab = specials + [t for _, _, t in cand[: self.max_vocab - len(specials)]]
        self._warn_unknown(tokens.vocab, counts, set(vocab), set(specials))
        vocab += [FAKE] * (8 - len(vocab) % 8)
        self.vocab_ = TokenVocab(vocab)

    @staticmethod
    def _training_tokens(tokens: Any) -> TokenizedTexts:
        """What :meth:`setup` takes (a :class:`TokenizedTexts`, or one list of str per text) as a
        :class:`TokenizedTexts`, whether or not a vocabulary was given: anything else is refused, naming it."""
        if isinstance(tokens, (list, tuple)) and tokens and all(isinstance(t, str) for t in tokens):
            raise ParameterError("Numericalize.setup takes the tokens of many texts (one list per text); got one "
                                 "text's tokens: wrap them in a list, [toks], or pass tkn(texts)")
        if isinstance(tokens, (list, tuple)):
            tokens = TokenizedTexts.from_lists(tokens, "Numericalize.setup")
        if not isinstance(tokens, TokenizedTexts):
            raise ParameterError(f"Numericalize.setup takes a TokenizedTexts (Tokenizer.encode output) or a list of "
                                 f"token lists, got {type(tokens).__name__}")
        return tokens

    def _warn_unknown(self, tokens: list[str], counts: np.ndarray, kept: set[str], specials: set[str],
                      given: bool = False) -> None:
        """Warn when most of the training texts' words (tokens holding a letter or digit: not the special tokens,
        punctuation or line breaks, which stay known) are left out of the vocabulary: they all become ``xxunk``, and
        texts that differ read as the same ids. Texts in a script written without spaces (Chinese, Japanese, Thai)
        do this with the word tokenizer, which takes a whole clause as one token; a vocabulary ``given`` to
        ``__init__`` does it when it holds another tokenizer's tokens (a subword language model's pieces, the
        texts split into words: the warning names the tokenizer to split them with), or when it is small or was
        learned on other texts (the warning says to learn it on more texts, or on these).

        >>> import warnings
        >>> from pipekit.text import Tokenizer
        >>> num = Numericalize(SPECIAL_TOKENS + ["\u2581a", "\u2581good", "\u2581film"])  # a subword model's pieces
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     num.setup(Tokenizer()(["a good film"]))                           # split into words
        >>> print(str(w[0].message)[:68])
        Numericalize: 100% of the 3 words of the training texts (tokens with
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     num.setup([["xxbos", "\u2581a", "\u2581good", "\u2581film"]])      # split into the model's pieces
        >>> w
        []
        """
        is_word = np.fromiter((t not in specials and any(c.isalnum() for c in t) for t in tokens), dtype=bool,
                              count=len(tokens))
        known = np.fromiter((t in kept for t in tokens), dtype=bool, count=len(tokens))
        words = int(counts[is_word].sum())
        unknown = int(counts[is_word & ~known].sum())
        if words and unknown / words > MAX_UNKNOWN_SHARE and given:
            seen = [t for t, w, c in zip(tokens, is_word, counts) if w and c]
            held = [t for t in kept if t not in specials and any(c.isalnum() for c in t)]
            vocab_style, text_style = _token_style(held), _token_style(seen)
            said = (f"{unknown / words:.0%} of the {words:,} words of the training texts (tokens with a letter or "
                    f"digit) are not in the vocabulary given ({len(kept):,} tokens), so they all become {UNK!r} and "
                    f"many texts read the same: ")
            if vocab_style != text_style or vocab_style[0]:
                # a subword vocabulary leaves few words unknown to its own model: these tokens are another's
                warn(f"Numericalize: {said}the vocabulary was learned on the tokens of another tokenizer (its tokens "
                     f"are {_describe(vocab_style)}, these texts' {_describe(text_style)}); split these texts with the "
                     f"tokenizer the vocabulary was learned with, as the language model's: TextBlock.from_df(..., "
                     f"vocab=dls_lm.vocab, tok=dls_lm.blocks[0].tok) (or from_folder(..., tok=...))")
            else:
                n_known = sum(t in kept for t in seen)
                warn(f"Numericalize: {said}the vocabulary, its tokens split as these texts' are ("
                     f"{_describe(text_style)}), holds only {n_known:,} of their {len(seen):,} distinct words: it is "
                     f"small or was learned on other texts; learn it (the language model's data) on more texts, or on "
                     f"these texts too, and pass its vocab again")
        elif words and unknown / words > MAX_UNKNOWN_SHARE:
            warn(f"Numericalize: {unknown / words:.0%} of the {words:,} words of the training texts (tokens with a "
                 f"letter or digit) are not in the vocabulary (min_freq={self.min_freq}, max_vocab={self.max_vocab:,}: "
                 f"{int((is_word & known & (counts > 0)).sum()):,} of {int((is_word & (counts > 0)).sum()):,} "
                 f"distinct words kept), so "
                 f"they all become {UNK!r} and many texts read the same; texts written without spaces between words "
                 f"(Chinese, Japanese, Thai) come out of the word tokenizer a clause to a token: use a subword "
                 f"tokenizer (tok=Tokenizer('unigram', vocab_sz=...)), or lower min_freq")

    def _ready(self) -> None:
        """Refuse to encode or decode before there is a vocabulary; one given to ``__init__`` is the vocabulary
        (``setup`` would keep it as is), so ``Numericalize(vocab=v)`` encodes at once, as in the book."""
        if "vocab_" not in vars(self) and self.vocab_arg is not None:
            self.vocab_ = TokenVocab(self.vocab_arg)
        self.check_is_fitted(_SETUP_CALL)

    def _lookup(self) -> dict[str, int]:
        self._ready()
        key = id(self.vocab_)
        if self._lookup_cache is None or self._lookup_cache[0] != key:
            self._lookup_cache = (key, {t: i for i, t in enumerate(self.vocab_) if t != FAKE})
        return self._lookup_cache[1]

    def encode_flat(self, tokens: TokenizedTexts) -> np.ndarray:
        """Flat int32 ids for ``tokens.ids`` (same layout, offsets unchanged)."""
        lookup = self._lookup()
        unk = lookup[UNK]
        table = np.fromiter((lookup.get(t, unk) for t in tokens.vocab), dtype=np.int32, count=len(tokens.vocab))
        return table[tokens.ids] if len(tokens.ids) else np.zeros(0, np.int32)

    @overload
    def encode(self, tokens: TokenizedTexts) -> pa.ListArray: ...
    @overload
    def encode(self, tokens: Any) -> Any: ...

    def encode(self, tokens: Any) -> pa.ListArray | torch.Tensor:
        """Ids of one text's tokens (a list of str, what ``tkn(text)`` gives) as a 1-d ``torch.long`` tensor,
        as ``num(toks)`` in the book; ids of many texts (a :class:`TokenizedTexts`, or a list of token lists)
        as an Arrow ``list<int32>`` array, one list per text.

        >>> from pipekit.text import Tokenizer
        >>> tkn, num = Tokenizer(), Numericalize(min_freq=1)
        >>> num.setup(tkn(["a film", "a good film"]))
        >>> nums = num(tkn("a good film"))
        >>> nums, nums[:2], [num.vocab[o] for o in nums]
        (tensor([ 2,  9, 11, 10]), tensor([2, 9]), ['xxbos', 'a', 'good', 'film'])
        """
        if isinstance(tokens, (list, tuple)) and all(isinstance(t, str) for t in tokens):
            one = TokenizedTexts.from_lists([tokens], "Numericalize")
            return torch.from_numpy(self.encode_flat(one).astype(np.int64))
        if isinstance(tokens, (list, tuple)):
            tokens = TokenizedTexts.from_lists(tokens, "Numericalize")
        if not isinstance(tokens, TokenizedTexts):
            raise ParameterError(f"Numericalize.encode takes one text's tokens (a list of str), a TokenizedTexts or "
                                 f"a list of token lists, got {type(tokens).__name__}")
        if tokens.offsets[-1] >= 2**31:
            raise DataError("more than 2**31 tokens in one column; split the corpus into several blocks")
        flat = self.encode_flat(tokens)
        return pa.ListArray.from_arrays(pa.array(tokens.offsets.astype(np.int32)), pa.array(flat, pa.int32()))

    def decode(self, ids: Any) -> list[Any]:
        """Ids back to token strings: one text's ids (a list, array, 1-d tensor or an Arrow list scalar) give
        its tokens; a column of texts (what :meth:`encode` returns, an Arrow list array, or a list of id
        lists) gives one list of tokens per text, and so does a 2-d batch of ids (``xb``), one list per row.
        Ids are integers (any integer dtype): floats, bools and strings are refused.

        >>> from pipekit.text import Tokenizer
        >>> num = Numericalize(min_freq=1)
        >>> num.setup(Tokenizer().encode(["a film", "a good film"]))
        >>> num.decode(torch.tensor([[2, 9], [11, 10]]))
        [['xxbos', 'a'], ['good', 'film']]
        """
        self._ready()
        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks()
        if isinstance(ids, pa.Array) and (pa.types.is_list(ids.type) or pa.types.is_large_list(ids.type)):
            offsets = np.asarray(ids.offsets, dtype=np.int64)
            flat = self._tokens(ids.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_numpy(
                zero_copy_only=False))
            offsets -= offsets[0]
            return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
        if isinstance(ids, pa.Scalar):
            ids = ids.as_py()
            if ids is None:
                raise DataError("Numericalize.decode: the ids are missing (a null list)")
            return self._tokens(ids)
        if isinstance(ids, (torch.Tensor, np.ndarray)) and ids.ndim == 2:  # a batch (``xb``): one token list per row
            rows = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else ids  # one copy, not one per row
            return [self._tokens(row) for row in rows]
        if isinstance(ids, (list, tuple)) and any(isinstance(v, (list, tuple)) or getattr(v, "ndim", 0) >= 1 for v in ids):
            return [self._tokens(v) for v in ids]
        return self._tokens(ids)

    def _tokens(self, ids: Any) -> list[str]:
        """The tokens of one text's ids, each checked to be an integer in the vocabulary."""
        try:
            arr = np.asarray(ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else ids)
        except (TypeError, ValueError):
            arr = np.asarray(None)
        # a float id (9.7) or a bool is not an id: reading it as an int would decode a token nobody encoded
        if arr.ndim > 1 or arr.dtype == bool or (arr.size and arr.dtype.kind not in "iu"):
            raise ParameterError(f"Numericalize.decode takes ids that are integers (a list, array or tensor of any "
                                 f"integer dtype, a 2-d batch, or what encode returned), got {type(ids).__name__} "
                                 f"{str(ids)[:60]}" + (f" of {arr.dtype}" if arr.dtype != object else ""))
        arr = arr.reshape(-1)
        if len(arr) and (arr.min() < 0 or arr.max() >= len(self.vocab_)):
            raise DataError(f"ids must be in [0, {len(self.vocab_)}); got min {arr.min()} max {arr.max()}")
        vocab = self.vocab_
        return [vocab[int(i)] for i in arr]

