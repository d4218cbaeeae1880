"""What a regular expression read from a tokenizer file may be: a bound on the time it can take on a text.

The ``tokenizers`` library runs a tokenizer's ``Split`` and ``Replace`` patterns with Oniguruma, a backtracking
engine: when a match fails it tries every other way the pattern could have matched, from every start position.
A pattern written for it, ``(a+)+$``, ``(a|aa)+$``, ``(.*a){20}`` or ``(?i)[sß]+$``, has exponentially (or to a
high power) many ways, so one 10,000-character text takes from seconds to minutes; Oniguruma's own limit (ten
million backtracking steps per start position) stops only the worst, and the library panics when it does.

:func:`check_pattern` reads a pattern with Oniguruma's syntax (Ruby's, as the library compiles it) and refuses:

- constructs whose cost the check cannot bound: back-references, subexpression calls, conditionals, the absent
  operator, extended (``x``) mode, ``\\X``/``\\K``/``\\y``, a ``{`` that is not a count, a quantifier on a quantifier,
  a pattern over :data:`MAX_PATTERN` characters;
- something repeated more than once that can match in more than one way: a group holding an alternation, a
  quantifier with a range or a look-around inside ``(...)+``, ``(...)*`` or ``(...){2,}``, and, ignoring case, a
  character or class naming a character outside ASCII (Oniguruma folds ß to ss, so ``[sß]+`` can split ``ssss``
  many ways): the engine tries every way of splitting the text among the repetitions, exponentially many;
- a pattern whose backtracking at one start position can grow faster than the text's length: two quantifiers
  without an upper bound in a row with something after them that can fail (``a+a+b``, ``.*a.*a``: every split of
  the text between them is tried), or ranges and alternations before an unbounded quantifier that multiply its
  tries past :data:`MAX_TRIES` (and alternations and counts past :data:`MAX_FIXED_STEPS` steps).

What is accepted takes at most about ``MAX_TRIES x n`` steps at each of a text's ``n`` start positions (:func:`cost`
counts them): quadratic at worst. On a 10,000-character text made to make them fail everywhere, ``a+b`` (2 steps per
character) takes 0.1 s of CPU, ``\\s+$`` 0.25 s and ``a?a?a?a+b`` (16, the most accepted) 0.9 s, against 12-33 s for
the first four patterns above and over 5 minutes for ``a+a+b``. The patterns published tokenizers store are
accepted, at 3-9 steps per character and each under 0.06 s on such texts: GPT-2's and RoBERTa's split, GPT-4's
(cl100k, also Llama 3's), GPT-4o's (o200k), Qwen2's, DeepSeek's, BLOOM's, BERT-style word and punctuation splits and
the normalizers' ``Replace`` patterns.

Example:
    >>> cost(r"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+")[0]
    3.0
    >>> check_pattern("(a+)+$")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: it repeats what can match in more than one way ((a+)+): ...
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

__all__ = ["MAX_PATTERN", "MAX_TRIES", "MAX_FIXED_STEPS", "check_pattern", "cost", "min_chars", "parse"]

#: longest pattern accepted, in characters: the published ones are at most ~330 (GPT-4o's split)
MAX_PATTERN = 1000
#: most backtracking steps per character of the text at one start position (the factor of n in :func:`cost`); GPT-2's
#: split takes 2, GPT-4o's 8, Llama 3's and Qwen2's 4
MAX_TRIES = 16
#: most steps at one start position that do not grow with the text (alternations and counted repetitions); the
#: published patterns take at most ~100
MAX_FIXED_STEPS = 10_000
#: largest count in ``{n,m}``: Oniguruma's own limit
_MAX_COUNT = 100_000


# ---------------------------------------------------------------------------------------- the pattern as a tree
@dataclass
class Atom:
    """One character (a literal, an escape, a class, ``.``); ``chars``: the fewest characters it matches (0 for a
    byte escape such as ``\\xe3``, which matches part of a character)."""

    text: str
    chars: int = 1
    #: matched ignoring case and naming a character outside ASCII: Oniguruma folds some to several characters (ß to
    #: ss, ﬀ to ff), so it may match 1 to 3 characters
    fold: bool = False


@dataclass
class Anchor:
    """A zero-width test that can fail: ``^``, ``$``, ``\\b``, ``\\A``..."""

    text: str


@dataclass
class Alt:
    """Alternatives, each a sequence of nodes."""

    branches: list[list[Node]]


@dataclass
class Group:
    """A group: capturing, non-capturing, with flags, atomic (``(?>...)``) or a look-around."""

    body: Alt
    text: str = "("
    atomic: bool = False
    look: bool = False


@dataclass
class Repeat:
    """A node with a quantifier: ``low`` to ``high`` times (None: no upper bound)."""

    node: Node
    low: int
    high: int | None
    possessive: bool = False
    text: str = field(default="")


Node = Union[Atom, Anchor, Alt, Group, Repeat]

#: escapes that are one character of a class: digits, words, spaces, hex digits, line breaks, any
_CLASS_ESCAPES = set("dDwWsShHNOR")
#: escapes that are one literal character
_CHAR_ESCAPES = set("tnrfvae")
_ANCHOR_ESCAPES = set("AzZbBG")
_REFUSED_ESCAPES = {"k": "a back-reference", "g": "a subexpression call", "X": "\\X", "K": "\\K", "y": "\\y",
                    "Y": "\\Y", "C": "\\C-", "M": "\\M-"}


class _Parser:
    def __init__(self, pattern: str):
        self.p, self.i, self.icase = pattern, 0, False

    def atom(self, start: int, chars: int = 1) -> Atom:
        text = self.p[start:self.i]
        return Atom(text, chars, fold=self.icase and (not text.isascii() or any(
            e in text for e in ("\\x", "\\u", "\\0"))))

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{what} at character {self.i}")

    def peek(self, k: int = 0) -> str:
        return self.p[self.i + k] if self.i + k < len(self.p) else ""

    def alternation(self, depth: int) -> Alt:
        if depth > 32:
            raise self.fail("groups nested more than 32 deep")
        branches: list[list[Node]] = [[]]
        while self.i < len(self.p) and self.peek() != ")":
            if self.peek() == "|":
                self.i += 1
                branches.append([])
                continue
            node = self.item(depth)
            if node is not None:
                branches[-1].append(self.quantified(node))
        return Alt(branches)

    def item(self, depth: int) -> Node | None:
        c, start = self.peek(), self.i
        if c == "(":
            return self.group(depth)
        if c == "[":
            self.char_class()
            return self.atom(start)
        if c == "\\":
            return self.escape()
        if c in "*+?":
            raise self.fail(f"a quantifier {c!r} with nothing before it")
        if c == "{":
            raise self.fail("a '{' that is not a count (write a literal { as \\{)")
        self.i += 1
        if c in "^$":
            return Anchor(c)
        return self.atom(start)

    def group(self, depth: int) -> Node | None:
        start, saved = self.i, self.icase
        self.i += 1
        kind = ""
        if self.peek() == "?":
            self.i += 1
            c = self.peek()
            if c == "#":  # a comment
                end = self.p.find(")", self.i)
                if end < 0:
                    raise self.fail("an unclosed (?# comment")
                self.i = end + 1
                return None
            if c in ":=!>":
                kind, self.i = c, self.i + 1
            elif c == "<" and self.peek(1) in ("=", "!"):
                kind, self.i = "<" + self.peek(1), self.i + 2
            elif c in "<'":  # a named group
                end = self.p.find(">" if c == "<" else "'", self.i + 1)
                if end < 0:
                    raise self.fail("an unclosed group name")
                kind, self.i = ":", end + 1
            else:  # flags: (?i) (?-i) (?i:...) (?m-i:...)
                j = self.i
                while self.peek() in ("i", "m", "-"):
                    self.i += 1
                on, _, off = self.p[j:self.i].partition("-")
                if self.i == j or self.peek() not in (":", ")"):
                    what = {"(": "a conditional", "~": "the absent operator"}.get(c, f"the group (?{c}")
                    if self.peek() == "x":
                        what = "extended mode (?x)"
                    raise self.fail(f"{what} (accepted: (...), (?:...), (?=...), (?!...), (?<=...), (?<!...), "
                                    "(?>...), named groups and the flags i and m)")
                self.icase = (self.icase or "i" in on) and "i" not in off
                if self.peek() == ")":  # flags for the rest of the enclosing group: matches nothing, never fails
                    self.i += 1
                    return Group(Alt([[]]), self.p[start:self.i])
                kind, self.i = ":", self.i + 1
        body = self.alternation(depth + 1)
        if self.peek() != ")":
            raise self.fail("an unclosed group")
        self.i += 1
        self.icase = saved
        return Group(body, self.p[start:self.i], atomic=kind == ">", look=kind in ("=", "!", "<=", "<!"))

    def char_class(self) -> None:
        """Step over a character class (nested classes, ``&&``, POSIX brackets and escapes included)."""
        self.i += 1
        if self.peek() == "^":
            self.i += 1
        if self.peek() == "]":  # a ']' first is a character
            self.i += 1
        depth = 1
        while self.i < len(self.p) and depth:
            c = self.peek()
            if c == "\\":
                if self.peek(1) in ("p", "P", "x") and self.peek(2) == "{":
                    end = self.p.find("}", self.i)
                    if end < 0:
                        raise self.fail("an unclosed \\p{ or \\x{")
                    self.i = end + 1
                else:
                    self.i += 2
                continue
            depth += {"[": 1, "]": -1}.get(c, 0)
            self.i += 1
        if depth:
            raise self.fail("an unclosed character class")

    def escape(self) -> Node:
        start = self.i
        e = self.peek(1)
        self.i += 2
        if not e:
            raise self.fail("a '\\' at the end")
        if e in "123456789":
            raise self.fail(f"a back-reference \\{e}")
        if e in _REFUSED_ESCAPES:
            raise self.fail(f"{_REFUSED_ESCAPES[e]} (its cost is not bounded here)")
        if e in _ANCHOR_ESCAPES:
            return Anchor(self.p[start:self.i])
        if e in ("p", "P", "x") and self.peek() == "{":
            end = self.p.find("}", self.i)
            if end < 0:
                raise self.fail(f"an unclosed \\{e}{{")
            self.i = end + 1
            return self.atom(start)
        if e == "x":  # a byte: part of a UTF-8 character
            while self.i < start + 4 and self.peek() and self.peek() in "0123456789abcdefABCDEF":
                self.i += 1
            return self.atom(start, chars=0)
        if e == "0":  # an octal byte
            while self.i < start + 4 and self.peek() and self.peek() in "01234567":
                self.i += 1
            return self.atom(start, chars=0)
        if e == "u":
            self.i += 4
            return self.atom(start)
        if e == "c":
            self.i += 1
            return self.atom(start)
        if e in _CLASS_ESCAPES or e in _CHAR_ESCAPES or not e.isalnum():
            return self.atom(start)
        raise self.fail(f"the escape \\{e}, which pattern checking does not know")

    def count(self) -> tuple[int, int | None] | None:
        """``{n}``, ``{n,}``, ``{,m}`` or ``{n,m}`` at the current position (None: not a count)."""
        end = self.p.find("}", self.i)
        if end < 0:
            return None
        inside = self.p[self.i + 1:end]
        low, comma, high = inside.partition(",")
        if not (low.isdigit() or (comma and high.isdigit())) or not all(x.isdigit() for x in (low, high) if x):
            return None
        if not low.isascii() or not high.isascii():
            return None
        lo, hi = int(low or 0), (int(high) if high else None) if comma else int(low)
        if lo > _MAX_COUNT or (hi is not None and (hi > _MAX_COUNT or hi < lo)):
            raise self.fail(f"the count {{{inside}}} (at most {_MAX_COUNT:,}, low <= high)")
        self.i = end + 1
        return lo, hi

    def quantified(self, node: Node) -> Node:
        c, start = self.peek(), self.i
        if c and c in "*+?":
            self.i += 1
            lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
            brace = False
        elif c == "{":
            got = self.count()
            if got is None:
                raise self.fail("a '{' that is not a count (write a literal { as \\{)")
            lo, hi = got
            brace = True
        else:
            return node
        if isinstance(node, Anchor) or (isinstance(node, Group) and node.look):
            raise self.fail("a quantifier on an anchor or a look-around")
        possessive = False
        if self.peek() == "?":  # lazy; Ruby's {n}? is (?:...{n})?
            self.i += 1
            if brace and hi == lo:
                lo = 0
        elif self.peek() == "+" and not brace:
            self.i += 1
            possessive = True
        if self.peek() in ("*", "+", "?", "{") and (self.peek() != "{" or self.count_ahead()):
            raise self.fail("a quantifier on a quantifier")
        return Repeat(node, lo, hi, possessive, self.p[start:self.i])

    def count_ahead(self) -> bool:
        i = self.i
        got = self.count()
        self.i = i
        return got is not None


def parse(pattern: str) -> Alt:
    """The tree of ``pattern`` (Oniguruma's Ruby syntax); ValueError, saying what and where, for what the checks
    do not accept or cannot read.

    >>> tree = parse("a|b+")
    >>> tree.branches[1][0].low, tree.branches[1][0].high, tree.branches[1][0].node.text
    (1, None, 'b')
    """
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"it has {len(pattern):,} characters, over the {MAX_PATTERN:,} accepted")
    p = _Parser(pattern)
    tree = p.alternation(0)
    if p.i < len(pattern):
        raise p.fail("a ')' without its '('")
    return tree


# ---------------------------------------------------------------------------------------- what it can cost
#: a number of backtracking steps as a polynomial in the text's length n: (constant, factor of n, factor of n^2...)
_Poly = tuple[float, ...]


def _add(a: _Poly, b: _Poly) -> _Poly:
    n = max(len(a), len(b))
    return tuple((a[k] if k < len(a) else 0.0) + (b[k] if k < len(b) else 0.0) for k in range(n))


def _mul(a: _Poly, b: _Poly) -> _Poly:
    out = [0.0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] += x * y
    return tuple(out)


_ONE: _Poly = (1.0,)
_N: _Poly = (0.0, 1.0)


def _can_fail(node: Node) -> bool:
    """Whether ``node`` can fail to match (an empty match is always possible otherwise)."""
    if isinstance(node, (Atom, Anchor)):
        return True
    if isinstance(node, Repeat):
        return node.low > 0 and _can_fail(node.node)
    if isinstance(node, Group):
        return node.look or _can_fail(node.body)
    return all(any(_can_fail(x) for x in b) for b in node.branches)


def _choices(node: Node) -> bool:
    """Whether ``node`` can match the same text in more than one way (or a different length)."""
    if isinstance(node, Atom):
        return node.fold
    if isinstance(node, Anchor):
        return False
    if isinstance(node, Repeat):
        return node.low != node.high or _choices(node.node)
    if isinstance(node, Group):
        return node.look or _choices(node.body)
    return len(node.branches) > 1 or any(_choices(x) for x in node.branches[0])


def _ways(node: Node) -> _Poly:
    """How many ways backtracking tries ``node`` at one position."""
    if isinstance(node, Atom):
        return (3.0,) if node.fold else _ONE
    if isinstance(node, Anchor):
        return _ONE
    if isinstance(node, Group):
        return _ONE if node.atomic or node.look else _ways(node.body)
    if isinstance(node, Alt):
        total: _Poly = (0.0,)
        for b in node.branches:
            ways = _ONE
            for x in b:
                ways = _mul(ways, _ways(x))
            total = _add(total, ways)
        return total
    if node.possessive:
        return _ONE
    if node.high is not None and node.high <= 1:
        return _add(_ways(node.node), _ONE if node.low == 0 else (0.0,))
    return _N if node.high is None else (float(node.high - node.low + 1),)


def _steps(node: Node, live: bool, look: bool) -> _Poly:
    """The backtracking steps ``node`` can take at one start position: ``live``, something after it can fail (so
    each of its ways is tried); ``look``, what it reads may not be consumed (inside a look-around, or an atomic group
    something after can fail)."""
    if isinstance(node, (Atom, Anchor)):
        return _ONE
    if isinstance(node, Group):
        # a look-around's or an atomic group's body is not backtracked into from outside, but what it reads is not
        # consumed when the match fails after it, so its runs are not paid for by the text they read
        return _add(_ONE, _steps(node.body, live and not (node.atomic or node.look),
                                 look or node.look or (node.atomic and live)))
    if isinstance(node, Alt):
        total: _Poly = (0.0,)
        for b in node.branches:
            total = _add(total, _sequence(b, live, look))
        return total
    if node.high is not None and node.high <= 1:
        return _add(_ONE, _steps(node.node, live, look))
    inner = _steps(node.node, False, look)
    if node.high is not None:
        return _mul((float(node.high),), inner)
    # without an upper bound: the greedy run reads up to n characters; once nothing after it can fail, the match
    # ends after the run, and the search goes on from there, so the text's characters are read once in all
    return inner if not live and not look else _mul(_N, inner)


def _sequence(items: list[Node], live: bool, look: bool) -> _Poly:
    total: _Poly = (0.0,)
    before = _ONE  # the combinations of the ways of the items before, each of which runs the next item again
    fails = [_can_fail(x) for x in items]
    for k, x in enumerate(items):
        after = live or any(fails[k + 1:])
        total = _add(total, _mul(before, _steps(x, after, look)))
        if after:
            before = _mul(before, _ways(x))
        else:  # nothing after it can fail: what follows runs once, when it matched, and the match ends there
            before = _ONE
    return total


def _repeated_choices(node: Node) -> str | None:
    """The first group repeated more than once that can match in more than one way."""
    if isinstance(node, Repeat):
        if (node.high is None or node.high > 1) and _choices(node.node):
            return _show(node.node) + node.text + (" ignoring case" if _folds(node.node) else "")
        return _repeated_choices(node.node)
    if isinstance(node, Group):
        return _repeated_choices(node.body)
    if isinstance(node, Alt):
        for b in node.branches:
            for x in b:
                found = _repeated_choices(x)
                if found:
                    return found
    return None


def _folds(node: Node) -> bool:
    if isinstance(node, Atom):
        return node.fold
    if isinstance(node, Repeat):
        return _folds(node.node)
    if isinstance(node, Group):
        return _folds(node.body)
    if isinstance(node, Alt):
        return any(_folds(x) for b in node.branches for x in b)
    return False


def _show(node: Node) -> str:
    if isinstance(node, (Atom, Anchor)):
        return node.text
    if isinstance(node, Repeat):
        return _show(node.node) + node.text
    if isinstance(node, Group):
        return node.text
    return "|".join("".join(_show(x) for x in b) for b in node.branches)


def _count(x: float) -> str:
    return f"{x:,.0f}" if x < 1e12 else f"{x:.2g}"


def cost(pattern: str) -> tuple[float, float]:
    """The backtracking steps ``pattern`` can take at one start position of a text of n characters, as (factor of
    n, constant); a ValueError for a pattern :func:`parse` refuses, or one whose steps grow faster than n.

    >>> cost(r"\\s+$"), cost(r"\\p{N}{1,3}")
    ((2.0, 0.0), (0.0, 3.0))
    """
    tree = parse(pattern)
    steps = _steps(tree, False, False)
    if len(steps) > 2 and any(steps[2:]):
        raise ValueError("two or more quantifiers without an upper bound are followed by something that can fail, "
                         "so every way of splitting the text between them is tried (a time that grows as the cube "
                         "of the text's length, or faster)")
    return steps[1] if len(steps) > 1 else 0.0, steps[0]


def check_pattern(pattern: str) -> None:
    """Refuse, with a ValueError saying why, a pattern whose matching time is not bounded (see the module docstring).

    >>> check_pattern(r"\\s+(?!\\S)|\\s+")
    >>> check_pattern("(a|aa)+$")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: it repeats what can match in more than one way ((a|aa)+): ...
    """
    tree = parse(pattern)
    found = _repeated_choices(tree)
    if found:
        raise ValueError(f"it repeats what can match in more than one way ({found[:80]}): the engine tries every way "
                         "of splitting a text among the repetitions, exponentially many; a repeated group may hold "
                         "only characters, classes and fixed counts, and a character or class repeated ignoring case "
                         "may name only ASCII characters (Oniguruma matches ß to ss, ﬀ to ff)")
    per_char, constant = cost(pattern)
    if per_char > MAX_TRIES:
        raise ValueError(f"its backtracking can take {_count(per_char)} steps per character of a text at each start "
                         f"position, over the {MAX_TRIES} accepted (ranges and alternations before an unbounded "
                         "quantifier multiply its tries)")
    if constant > MAX_FIXED_STEPS:
        raise ValueError(f"its backtracking can take {_count(constant)} steps at each start position, over the "
                         f"{MAX_FIXED_STEPS:,} accepted (counted repetitions and alternations multiply)")


def min_chars(pattern: str) -> int:
    """The fewest characters ``pattern`` matches, for a pattern of characters, escapes, classes and ``.``, each
    optionally quantified; 0 for anything else (groups, alternation, anchors, look-arounds, bytes such as ``\\x41``):
    it may match an empty string, so a replacement may be inserted at every position.

    >>> min_chars(" {2,}"), min_chars("ab?c"), min_chars("(a|b)")
    (2, 2, 0)
    """
    try:
        tree = parse(pattern)
    except ValueError:
        return 0
    if len(tree.branches) != 1:
        return 0
    total = 0
    for x in tree.branches[0]:
        if isinstance(x, Repeat) and isinstance(x.node, Atom) and x.node.chars:
            total += x.low
        elif isinstance(x, Atom) and x.chars:
            total += 1
        else:
            return 0
    return total
