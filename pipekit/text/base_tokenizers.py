"""The book's base tokenizers, ``WordTokenizer`` and ``SubwordTokenizer``, as pipekit's tokenizer modes.

In fastai a base tokenizer splits text into words or subword pieces and nothing more, and
``Tokenizer(tok)`` adds the rules (``xxbos``, ``xxmaj``, ``xxup``, ``xxrep``, ``xxwrep``, HTML fixes). pipekit
has one tokenizer with modes, so a base tokenizer is that tokenizer with the rules and ``xxbos`` off, and
``Tokenizer(WordTokenizer())`` is ``Tokenizer("word")``, ``Tokenizer(SubwordTokenizer(vocab_sz=n))`` is
``Tokenizer("unigram", vocab_sz=n)``. The words are split by pipekit's Rust ``tokenizers`` pre-tokenizer, not
by spaCy, and subwords are trained by the ``tokenizers`` library, not sentencepiece, so some texts split
differently (``U.S.`` is ``U . S .``).

>>> spacy = WordTokenizer()
>>> spacy("The U.S. dollar $1 is $1.00.")[:6]
['The', 'U', '.', 'S', '.', 'dollar']
>>> Tokenizer(spacy)("The dollar is GREAT.")
['xxbos', 'xxmaj', 'the', 'dollar', 'is', 'xxup', 'great', '.']
"""
from __future__ import annotations

from typing import Any, ClassVar

from pipekit.core.validate import Options, check
from pipekit.text.tokenize import Tokenizer


class WordTokenizer(Tokenizer):
    """Words and punctuation, as the text writes them (no rules, no ``xxbos``): fastai's ``WordTokenizer``.
    ``Tokenizer(WordTokenizer())`` is ``Tokenizer("word")``, the book's rules on these words.

    >>> WordTokenizer()("Sooo GOOD, isn't it?")
    ['Sooo', 'GOOD', ',', 'is', "n't", 'it', '?']
    """

    is_base_tokenizer = True
    param_constraints: ClassVar[dict[str, Any]] = {}  # no parameters: the settings are fixed
    record_defaults: ClassVar[dict[str, Any]] = {}  # words, nothing to fit: no subword model, so no units_

    def __init__(self) -> None:
        super().__init__("word", rules=False, add_bos=False)


class SubwordTokenizer(Tokenizer):
    """Subword pieces of a model with ``vocab_sz`` entries that ``setup`` trains on the training texts (no
    rules, no ``xxbos``): fastai's ``SubwordTokenizer``. ``model_type`` is "unigram" (as in fastai) or "bpe".
    As SentencePiece does, the model is trained on the raw text split at whitespace (``▁`` marks the space
    before a chunk: ``in this, which`` is ``▁in ▁this , ▁which``), and decoding the pieces gives the text back with its runs of
    spaces as one. ``units_`` says what the model is applied to: a file from a pipekit that trained it on the word split
    has none and keeps the word split, and so the tokens it gave. ``Tokenizer(SubwordTokenizer(vocab_sz=n))`` is ``Tokenizer("unigram", vocab_sz=n)``, which
    trains its own model on the words after the rules when it is set up.

    >>> sp = SubwordTokenizer(vocab_sz=30)
    >>> sp.setup(["A good film.", "A bad film!", "Good fun, a film, a good one.", "films are fun"] * 5)
    >>> pieces = sp("a good film!")
    >>> pieces[-2:], sp.decode(pieces)
    (['\u2581film', '!'], 'a good film!')

    ``setup`` warns when the texts hold fewer pieces than ``vocab_sz`` asks for.
    """

    is_base_tokenizer = True
    # its own parameters only: the other settings are fixed, and the model type is the mode
    param_constraints = {"vocab_sz": Tokenizer.param_constraints["vocab_sz"], "model_type": Options("unigram", "bpe")}

    def __init__(self, vocab_sz: int | None = None, model_type: str = "unigram"):
        # checked before it is read as a mode, so the error names this parameter
        check("SubwordTokenizer", model_type=(model_type, Options("unigram", "bpe")))
        self.model_type = model_type
        super().__init__(model_type, vocab_sz=vocab_sz, rules=False, add_bos=False)
