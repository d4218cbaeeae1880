"""The book's text rules one function each (``defaults.text_proc_rules``), and ``coll_repr`` to show tokens.

:class:`~pipekit.text.Tokenizer` applies its rules in one pass over a whole corpus (see
:mod:`pipekit.text.tokenize`); these functions are the same rules on one text, in the order the tokenizer
applies them, for reading and trying one at a time as chapter 10 does. Applied in turn to a text they give
the text of its tokens, so ``re.findall(r"\\n+|\\S+", text)`` is then ``Tokenizer()(text)``. The list is a
description: editing it does not change what ``Tokenizer`` does (``Tokenizer(rules=False)`` turns them all off).

>>> from pipekit.text import Tokenizer, coll_repr, defaults
>>> [f.__name__ for f in defaults.text_proc_rules]
['fix_html', 'replace_wrep', 'split_pieces', 'replace_all_caps', 'replace_maj', 'lowercase', 'replace_rep']
>>> t = "I don't like it!!! SO boring &amp; sooo long."
>>> for rule in defaults.text_proc_rules:
...     t = rule(t)
>>> t.split() == Tokenizer()("I don't like it!!! SO boring &amp; sooo long.")
True
>>> print(coll_repr(t.split(), 8))
(#19) ['xxbos', 'i', 'do', "n't", 'like', 'it', 'xxrep', '3'...]
"""
from __future__ import annotations

import re
from typing import Any

import polars as pl
from tokenizers import Regex, pre_tokenizers

from pipekit.data.lists import coll_repr  # its home is pipekit.data.lists (fastai's L prints with it)
from pipekit.data.runtime import defaults
from pipekit.text.tokenize import (_PIECE_PATTERN, BOS, EOS, HTML_FIXES, SPECIAL_TOKENS, TK_MAJ, TK_REP, TK_UP, TK_WREP,
                                   _case_marker, _unescape_entities)

__all__ = ["coll_repr", "defaults", "fix_html", "lowercase", "replace_all_caps", "replace_maj", "replace_rep",
           "replace_wrep", "split_pieces"]

# a word chunk written three times or more in a row, the chunks apart by spaces or tabs (a line break is a token)
_RE_WREP = re.compile(r"(?<!\S)(\w+)((?:[^\S\n]+\1(?!\S)){2,})")
# a run's count after xxwrep is a number, not text, so no xxrep goes into it; else a character written 3+ times
_RE_REP_OR_COUNT = re.compile(rf"({TK_WREP}[^\S\n]+\d+)(?!\S)|(\S)\2{{2,}}")
_PIECES = pre_tokenizers.Split(Regex(_PIECE_PATTERN), behavior="isolated")


def _each_token(t: str, f: Any) -> str:
    """``t`` with each of its whitespace-separated tokens replaced by ``f(token)``."""
    return re.sub(r"\S+", lambda m: f(m.group()), t)


def fix_html(t: str) -> str:
    """HTML and escapes left in scraped text: ``<br />`` -> a line break, ``&amp;`` -> ``&``, ``#39;`` -> ``'``,
    wikitext's `` @-@ `` -> ``-`` ..., then any other character reference (``&copy;`` -> ``©``).

    >>> fix_html("Good.<br /><br />Bad &amp; ugly &copy;")
    'Good.\\n\\nBad & ugly ©'
    """
    fixed = pl.Series([t], dtype=pl.String).str.replace_many([a for a, _ in HTML_FIXES], [b for _, b in HTML_FIXES])
    return str(_unescape_entities(fixed)[0])


def replace_wrep(t: str) -> str:
    """A word written three times or more in a row (in the same case) -> ``xxwrep``, the count and the word.

    >>> replace_wrep("it was very very very very bad")
    'it was xxwrep 4 very bad'
    """
    return _RE_WREP.sub(lambda m: f"{TK_WREP} {len(m.group(2).split()) + 1} {m.group(1)}", t)


def split_pieces(t: str) -> str:
    """Each token split into words, punctuation marks, runs of one mark and contractions (``do n't``,
    ``it 's``), spaced apart: what fastai's ``spec_add_spaces`` and spaCy's word splitting do together.

    >>> split_pieces("I don't know,it's www.fast.ai/INDEX!!!")
    "I do n't know , it 's www . fast . ai / INDEX !!!"
    """
    return _each_token(t, lambda c: " ".join(p for p, _ in _PIECES.pre_tokenize_str(c)))


def replace_all_caps(t: str) -> str:
    """A token of two characters or more, a letter first, in capitals -> ``xxup`` and the token in lower case; a
    contraction (``N'T``) is left for ``lowercase``, as the word before it has the marker.

    >>> replace_all_caps("this is SO GREAT , I think , DO N'T")
    "this is xxup so xxup great , I think , xxup do N'T"
    """
    return _each_token(t, lambda p: f"{TK_UP} {p.lower()}" if _case_marker(p) == TK_UP else p)


def replace_maj(t: str) -> str:
    """A Capitalised token of two characters or more -> ``xxmaj`` and the token in lower case.

    >>> replace_maj("Hello World , I am McDonald")
    'xxmaj hello xxmaj world , I am McDonald'
    """
    return _each_token(t, lambda p: f"{TK_MAJ} {p.lower()}" if _case_marker(p, caps=False) == TK_MAJ else p)


def lowercase(t: str, add_bos: bool = True, add_eos: bool = False) -> str:
    """``t`` in lower case, ``xxbos`` first (``add_bos``) and ``xxeos`` last (``add_eos``), as a ``Tokenizer``'s
    own ``add_bos``/``add_eos`` put them.

    >>> lowercase("I am McDonald")
    'xxbos i am mcdonald'
    """
    return (f"{BOS} " if add_bos else "") + t.lower() + (f" {EOS}" if add_eos else "")


def replace_rep(t: str) -> str:
    """A character written three times or more in a row -> ``xxrep``, the count and the character (the count
    of a word run, after ``xxwrep``, is left as it is).

    >>> replace_rep("sooooo good !!!! xxwrep 111 very")
    's xxrep 5 o good xxrep 4 ! xxwrep 111 very'
    """
    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(1)
        run, before, after = m.group(0), t[m.start() - 1:m.start()], t[m.end():m.end() + 1]
        # spaced apart from the characters around it, as tokens
        return (" " if before.strip() else "") + f"{TK_REP} {len(run)} {run[0]}" + (" " if after.strip() else "")

    return _RE_REP_OR_COUNT.sub(one, t)


#: the book's ``defaults.text_proc_rules`` (the rules ``Tokenizer`` applies, in its order) and
#: ``defaults.text_spec_tok`` (the special tokens, the first ids of every vocabulary), set on the one ``defaults`` of
#: :mod:`pipekit.data.runtime` (which has ``cpus``), as fastai's star imports give one namespace
defaults.text_proc_rules = [fix_html, replace_wrep, split_pieces, replace_all_caps, replace_maj, lowercase,
                            replace_rep]
defaults.text_spec_tok = list(SPECIAL_TOKENS)
