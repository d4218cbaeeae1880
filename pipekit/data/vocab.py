"""The vocabulary of a categorical target or column: a list of classes, in code order, that is indexed with codes.

:class:`CategoryMap` is what ``dls.vocab``, ``dsets.train.vocab`` (``Categorize``, ``MultiCategorize``) and a
tabular ``dls.classes[col]`` (``Categorify``) are. It is a plain list (equal to one, stored as one in exports)
that also takes what a model gives as an index, as fastai's vocab does: the codes of a batch of predictions
(``dls.vocab[preds.argmax(1)]``), the positions of a multi-hot target
(``vocab[torch.where(y == 1.)[0]]``) or a boolean mask of the classes (``vocab[y.bool()]``); and it looks a
class's code up by value with ``.o2i``.

Example:
    >>> import torch
    >>> v = CategoryMap(["cat", "dog", "fish"])
    >>> v[1], v[torch.tensor([2, 0])], v[torch.tensor([0., 1., 1.]) == 1.], v.o2i["fish"]
    ('dog', ['fish', 'cat'], ['dog', 'fish'], 2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, SupportsIndex, overload

import numpy as np
import polars as pl

from pipekit.core.errors import NotInVocab, ParameterError

#: the class that stands for a missing or unseen value: code 0 of a vocab built with ``add_na`` (a categorical
#: column's, or a ``CategoryBlock(add_na=True)``'s)
NA_TOKEN = "#na#"

#: how a vocabulary finds the code of one value: ``code_of(vocab, value)`` is the code, or a KeyError naming it
CodeOf = Callable[["CategoryMap", Any], int]


def label_codes(vocab: list[Any], values: pl.Series) -> pl.Series:
    """The code of each of ``values`` in ``vocab`` (null where a value is not in it), matched by value as
    ``Categorize`` and ``MultiCategorize`` encode labels; labels of a type the vocab's cannot be matched to raise
    Polars' ``InvalidOperationError``.

    >>> label_codes([3, 7], pl.Series([7, 3, 5])).to_list()
    [1, 0, None]
    """
    if vocab and (values.dtype == pl.Boolean) != isinstance(vocab[0], bool):
        # Polars would cast the vocab to the labels' type: [3, 7] as flags is [True, True], two codes for one label
        raise pl.exceptions.InvalidOperationError(f"labels of type {values.dtype} are not of the vocab's type")
    return values.replace_strict(vocab, list(range(len(vocab))), default=None, return_dtype=pl.Int64)


def one_value(value: Any) -> Any:
    """One value as Python sees it (a 0-d array or tensor gives its item); a list or array of several is refused.

    >>> one_value(np.int64(3)), one_value("a")
    (3, 'a')
    """
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    if not isinstance(value, (str, bytes)) and isinstance(value, Iterable):
        raise ParameterError(f"o2i takes one value, got {type(value).__name__} {value!r:.60}; for several, "
                             "[vocab.o2i[v] for v in values]")
    return value


#: what to do about a value a vocabulary does not hold, ending each :class:`NotInVocab` message
NOT_IN_VOCAB_FIX = "test first with `value in vocab.o2i`, or take a default with vocab.o2i.get(value, default)"


def label_code(vocab: CategoryMap, value: Any) -> int:
    """The code of the label ``value`` in ``vocab``, matched as :func:`label_codes` (and so ``Categorize``) matches
    it: an integer label is found as ``3``, ``np.int64(3)``, ``torch.tensor(3)``, ``3.0`` or ``'3'`` (as a label
    column of text digits is encoded), a flag only among flags.

    >>> label_code(CategoryMap([3, 7]), 7), label_code(CategoryMap([3, 7]), "7")
    (1, 1)
    """
    value = one_value(value)
    code = None
    if value is not None:
        try:
            code = label_codes(vocab, pl.Series([value])).item()
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
            code = None  # a value of another type than the labels' is none of them
    if code is None:
        of = f" of {vocab.name!r}" if vocab.name else ""
        raise NotInVocab(f"{value!r} is not in the vocab{of} ({len(vocab)} classes, e.g. {list.__repr__(vocab[:4])}); "
                         f"classes are looked up by the value the labels hold; {NOT_IN_VOCAB_FIX}")
    return int(code)


def cut_repr(values: list[Any], shown: int, said: str) -> str:
    """A vocabulary's repr in one line: the list as it is up to ``shown`` values, else its first ten and last two
    values and its length, ``said`` naming what they are (``'tokens'``, ``'classes of ...'``).

    >>> cut_repr([f"w{i}" for i in range(30)], 20, "tokens")
    "['w0', 'w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'w7', 'w8', 'w9', ..., 'w28', 'w29'] (30 tokens)"
    """
    if len(values) <= shown:
        return list.__repr__(values)
    head, tail = list.__repr__(values[:10])[:-1], list.__repr__(values[-2:])[1:]
    return f"{head}, ..., {tail} ({len(values)} {said})"


class CategoryMap(list[Any]):
    """The classes of a categorical target or column, in code order: a list (equal to the plain list, stored as
    one) indexed by codes as a model gives them, that also looks codes up by value, as fastai's ``CategoryMap``
    does.

    An index is an int (the class), a slice (a list), a 1-D integer tensor, array or list of ints (the list of
    those classes), a 0-d integer tensor or array (the class), or a boolean tensor, array or list as long as the
    vocab (the classes where it is True). ``o2i[value]`` is the code of a class (``code_of`` says how a value is
    matched; by default as ``Categorize`` matches labels).

    Example:
        >>> import torch
        >>> v = CategoryMap(["3", "7"])
        >>> v[torch.tensor([1, 1, 0])], v[np.int64(0)], v == ["3", "7"], v.o2i["7"]
        (['7', '7', '3'], '3', True, 1)
    """

    #: a vocabulary longer than this shows its first and last values only
    SHOWN = 20

    def __init__(self, items: Iterable[Any] = (), name: str | None = None, code_of: CodeOf | None = None) -> None:
        super().__init__(items)
        self.name = name
        self.code_of: CodeOf = code_of or label_code
        self._exact: dict[tuple[type, Any], int] | None = None

    def exact_code(self, value: Any) -> int | None:
        """The code of ``value`` when the vocab holds that very value (same type, equal), else None: one dict
        lookup, built once, where ``code_of`` matches a value of another type (``50`` for ``'50'``) at a cost that
        grows with the vocab."""
        if self._exact is None:
            self._exact = {}
            for i, v in enumerate(self):
                try:
                    self._exact.setdefault((type(v), v), i)
                except TypeError:  # an unhashable class is found by code_of
                    pass
        try:
            return self._exact.get((type(value), value))
        except TypeError:
            return None

    def derived(self, key: str, compute: Callable[[CategoryMap], Any]) -> Any:
        """``compute(self)``, worked out once and kept under ``key`` until the entries change (``append``,
        ``extend``, item assignment ...): what an encoding needs of the vocab on every call, such as the texts of
        the whole numbers it holds as floats, costs one pass over it, not one per call.

        >>> m = CategoryMap(["#na#", "a", "b"])
        >>> m.derived("n", len), m.derived("n", lambda v: -1)
        (3, 3)
        >>> m.append("c"); m.derived("n", len)
        4
        """
        kept = self.__dict__.setdefault("_derived", {})
        if key not in kept:
            kept[key] = compute(self)
        return kept[key]

    def _changed(self) -> None:
        self._exact = None
        self._derived: dict[str, Any] = {}

    def __setitem__(self, i: Any, v: Any) -> None:
        list.__setitem__(self, i, v)
        self._changed()

    def __delitem__(self, i: Any) -> None:
        list.__delitem__(self, i)
        self._changed()

    def __iadd__(self, other: Iterable[Any]) -> CategoryMap:  # type: ignore[override,misc]
        list.extend(self, other)
        self._changed()
        return self

    def append(self, v: Any) -> None:
        list.append(self, v)
        self._changed()

    def extend(self, vs: Iterable[Any]) -> None:
        list.extend(self, vs)
        self._changed()

    def insert(self, i: SupportsIndex, v: Any) -> None:
        list.insert(self, i, v)
        self._changed()

    def remove(self, v: Any) -> None:
        list.remove(self, v)
        self._changed()

    def pop(self, i: SupportsIndex = -1) -> Any:
        out = list.pop(self, i)
        self._changed()
        return out

    def clear(self) -> None:
        list.clear(self)
        self._changed()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        list.sort(self, *args, **kwargs)
        self._changed()

    def reverse(self) -> None:
        list.reverse(self)
        self._changed()

    @overload
    def __getitem__(self, i: SupportsIndex) -> Any: ...

    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...

    @overload
    def __getitem__(self, i: object) -> Any: ...

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, (int, slice)):  # the list's own (an int is a class, a slice a plain list)
            return list.__getitem__(self, i)
        if isinstance(i, list):
            i = np.asarray(i) if i else np.zeros(0, np.int64)
        elif type(i).__module__.startswith("torch") and hasattr(i, "detach"):
            i = i.detach().cpu().numpy()
        elif not isinstance(i, (np.ndarray, np.generic)):
            raise ParameterError(f"a vocab is indexed by an int, a slice, integer codes or a boolean mask, got "
                                 f"{type(i).__name__} {i!r:.60}; for the code of a class, vocab.o2i[value]")
        if i.ndim == 0 and i.dtype.kind in "iu":
            return list.__getitem__(self, int(i))
        if i.ndim != 1 or i.dtype.kind not in "iub":
            raise ParameterError(f"a vocab is indexed by 1-D integer codes (e.g. preds.argmax(1)) or a boolean mask of "
                                 f"its {len(self)} classes, got {i.ndim}-D values of type {i.dtype}")
        if i.dtype.kind == "b":
            if len(i) != len(self):
                raise IndexError(f"a boolean mask of {len(i)} values for a vocab of {len(self)} classes: a mask "
                                 "has one value per class")
            i = np.flatnonzero(i)
        bad = i[(i < -len(self)) | (i >= len(self))]
        if bad.size:
            raise IndexError(f"code(s) {bad[:10].tolist()} outside the vocab of {len(self)} classes (codes are "
                             f"0..{len(self) - 1})")
        return [list.__getitem__(self, int(c)) for c in i]

    @property
    def o2i(self) -> ValueCodes:
        """Value -> code: ``o2i[value]``, ``value in o2i``, ``o2i.get``."""
        return ValueCodes(self)

    def __repr__(self) -> str:
        of = f" of {self.name!r}" if self.name else ""
        return cut_repr(self, self.SHOWN, f"classes{of}; .o2i[value] gives a code")


class ValueCodes(Mapping[Any, int]):
    """A :class:`CategoryMap`'s ``o2i``: the code of a value, looked up by the vocab's ``code_of``; iterates over
    the classes.

    >>> CategoryMap([3, 7]).o2i
    o2i({3: 0, 7: 1})
    """

    def __init__(self, vocab: CategoryMap) -> None:
        self.vocab = vocab

    def __getitem__(self, value: Any) -> int:
        code = self.vocab.exact_code(value)
        if code is not None:
            return code
        try:
            return self.vocab.code_of(self.vocab, value)
        except NotInVocab:
            raise
        except KeyError as e:  # a code_of's own KeyError, made as readable as the vocab's
            what = e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str) else f"{value!r} is not in the vocab"
            raise NotInVocab(f"{what}; {NOT_IN_VOCAB_FIX}") from None

    def __contains__(self, value: object) -> bool:
        try:
            self[value]
        except (KeyError, ParameterError):
            return False
        return True

    def values(self) -> Any:
        """The codes, in code order."""
        return range(len(self.vocab))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def items(self) -> Any:
        """(class, code) pairs, in code order."""
        return {v: i for i, v in enumerate(self.vocab)}.items()

    def __repr__(self) -> str:
        shown = ", ".join(f"{v!r}: {i}" for i, v in enumerate(self.vocab[:5]))
        return f"o2i({{{shown}{', ...' if len(self.vocab) > 5 else ''}}})"
