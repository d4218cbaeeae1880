"""Getters: find items and read x/y from them, a whole column at a time.

A getter object has ``column(items) -> pl.Series`` (vectorised over the items DataFrame) and
``__call__(item)`` (one item, for users who compose it in their own functions). Plain Python
functions are accepted as getters too; they are mapped over the items one by one, and an error in
one item names that item.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pipekit.core.component import Component
from pipekit.core.errors import DataError, ParameterError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jfif"})
TEXT_EXTENSIONS = frozenset({".txt"})


# ---------------------------------------------------------------------------------------- finding files
def get_files(path: str | os.PathLike, extensions: Iterable[str] | None = None, recurse: bool = True,
              folders: Sequence[str] | None = None, followlinks: bool = True) -> list[Path]:
    """All files under ``path`` (sorted, so the order is the same on every machine).

    ``extensions`` filters by suffix (case-insensitive); ``folders`` restricts the walk to those
    top-level sub-folders of ``path``.

    >>> import pipekit.datasets as D
    >>> len(get_files(D.path("mnist_tiny") / "train", extensions=[".png"]))
    709
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"get_files: {path} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"get_files: {path} is a file; pass the folder that holds the items")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions} if extensions else None
    roots = [path / f for f in folders] if folders else [path]
    for r in roots:
        if not r.is_dir():
            raise FileNotFoundError(f"get_files: folder {r} (from folders={list(folders or [])}) does not exist")
    out: list[Path] = []
    for root in roots:
        if recurse:
            for dirpath, dirnames, filenames in os.walk(root, followlinks=followlinks):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                out.extend(Path(dirpath, f) for f in filenames
                           if not f.startswith(".") and (exts is None or os.path.splitext(f)[1].lower() in exts))
        else:
            out.extend(p for p in root.iterdir()
                       if p.is_file() and not p.name.startswith(".")
                       and (exts is None or p.suffix.lower() in exts))
    return sorted(out)


def get_image_files(path: str | os.PathLike, recurse: bool = True, folders: Sequence[str] | None = None) -> list[Path]:
    """Image files under ``path`` (see :func:`get_files`).

    >>> import pipekit.datasets as D
    >>> len(get_image_files(D.path("mnist_tiny"), folders=["train", "valid"]))
    1408
    """
    return get_files(path, extensions=IMAGE_EXTENSIONS, recurse=recurse, folders=folders)


def get_text_files(path: str | os.PathLike, recurse: bool = True, folders: Sequence[str] | None = None) -> list[Path]:
    """``.txt`` files under ``path`` (see :func:`get_files`)."""
    return get_files(path, extensions=TEXT_EXTENSIONS, recurse=recurse, folders=folders)


# ---------------------------------------------------------------------------------------- item access
def path_column(items: pl.DataFrame, who: str) -> pl.Series:
    """The column holding each item's path: ``path`` if present, else the only column."""
    if "path" in items.columns:
        return items["path"].cast(pl.Utf8)
    if items.width == 1:
        return items.to_series(0).cast(pl.Utf8)
    raise DataError(f"{who}: the items have no 'path' column (columns: {items.columns}); "
                     f"read the path first, e.g. get_y=Pipe(ColReader('name'), {who})")


def item_at(items: pl.DataFrame, i: int) -> Any:
    """One item as a user function sees it: a Path for path items, the value for a single column, else a dict."""
    if items.columns == ["path"]:
        return Path(items["path"][i])
    if items.width == 1:
        return items.to_series(0)[i]
    return items.row(i, named=True)


def iter_items(items: pl.DataFrame) -> Iterable[Any]:
    if items.columns == ["path"]:
        return (Path(p) for p in items["path"])
    if items.width == 1:
        return iter(items.to_series(0))
    return items.iter_rows(named=True)


class Getter(Component):
    """Base class for vectorised getters: ``column(items)`` reads a whole column; calling one on a single
    item works too, for users who compose getters in their own functions."""

    registry_kind = "getter"

    def column(self, items: pl.DataFrame) -> pl.Series:
        raise NotImplementedError

    def __call__(self, item: Any) -> Any:
        df = pl.DataFrame({"path": [str(item)]}) if isinstance(item, (str, os.PathLike)) else pl.DataFrame([item])
        return self.column(df)[0]


class ColReader(Getter):
    """Read column(s) ``cols`` of a table of items, optionally adding a prefix/suffix or splitting labels.

    >>> df = pl.DataFrame({"name": ["a.png", "b.png"], "tags": ["x y", "y"]})
    >>> ColReader("name", pref="imgs/").column(df).to_list()
    ['imgs/a.png', 'imgs/b.png']
    >>> ColReader("tags", label_delim=" ").column(df).to_list()
    [['x', 'y'], ['y']]
    """

    def __init__(self, cols: str | Sequence[str], pref: str | os.PathLike = "", suffix: str = "",
                 label_delim: str | None = None):
        if isinstance(cols, (list, tuple)):
            if not cols:
                raise ParameterError("ColReader: cols is empty; name at least one column")
            self.cols: str | list[str] = list(cols)
        elif isinstance(cols, str):
            self.cols = cols
        else:
            raise ParameterError(f"ColReader: cols must be a column name or a list of names, got {cols!r}")
        # a folder prefix joins with a separator, as a path would
        self.pref = (str(pref).rstrip("/") + "/") if isinstance(pref, os.PathLike) else str(pref)
        self.suffix = suffix
        self.label_delim = label_delim

    def column(self, items: pl.DataFrame) -> pl.Series:
        names = self.cols if isinstance(self.cols, list) else [self.cols]
        missing = [c for c in names if c not in items.columns]
        if missing:
            raise DataError(f"ColReader: column(s) {missing} not in the items; the columns are {items.columns}")
        if isinstance(self.cols, list) and len(self.cols) > 1:
            return items.select(pl.struct(self.cols).alias("_".join(self.cols))).to_series()
        s = items[names[0]]
        if self.pref or self.suffix:
            s = items.select((pl.lit(self.pref) + pl.col(names[0]).cast(pl.Utf8) + pl.lit(self.suffix))
                             .alias(names[0])).to_series()
        if self.label_delim is not None:
            s = s.cast(pl.Utf8).str.split(self.label_delim).list.eval(pl.element().filter(pl.element() != ""))
        return s


class ParentLabel(Getter):
    """The name of the folder an item's file is in (``train/3/7463.png`` -> ``'3'``)."""

    def column(self, items: pl.DataFrame) -> pl.Series:
        p = path_column(items, "parent_label")
        return p.str.replace_all(r"\\", "/").str.split("/").list.get(-2, null_on_oob=True).alias("parent_label")

    def __call__(self, item: Any) -> str:
        return Path(item).parent.name

    def __repr__(self) -> str:
        return "parent_label"


#: ``get_y=parent_label`` labels each file by its folder
parent_label = ParentLabel()


class RegexLabeller(Getter):
    """Label each item by the first group of ``pat`` searched in its path (``match=True`` anchors at the start).

    >>> RegexLabeller(r"/([^/]+)_\\d+.jpg$")("images/great_pyrenees_17.jpg")
    'great_pyrenees'
    """

    def __init__(self, pat: str, match: bool = False):
        try:
            rx = re.compile(pat)
        except re.error as e:
            raise ParameterError(f"RegexLabeller: invalid pattern {pat!r}: {e}") from None
        if rx.groups < 1:
            raise ParameterError(f"RegexLabeller: pattern {pat!r} has no group; put the label in parentheses")
        self.pat = pat
        self.match = match

    def _regex(self) -> str:
        return ("^" + self.pat) if self.match and not self.pat.startswith("^") else self.pat

    def column(self, items: pl.DataFrame) -> pl.Series:
        p = path_column(items, "RegexLabeller")
        try:
            out = p.str.extract(self._regex(), 1)
        except Exception:  # a Python-only regex feature (look-around, back-reference): run it in Python
            rx = re.compile(self._regex())
            out = pl.Series([(m.group(1) if (m := rx.search(s)) else None) for s in p], dtype=pl.Utf8)
        bad = out.is_null()
        if bad.any():
            i = int(bad.arg_true()[0])
            raise DataError(f"RegexLabeller: pattern {self.pat!r} does not match item {i} ({p[i]!r}) "
                             f"nor {int(bad.sum()) - 1} other item(s); fix the pattern or filter the items")
        return out.alias("label")

    def __call__(self, item: Any) -> str:
        return self.column(pl.DataFrame({"path": [str(item)]}))[0]


class Pipe(Getter):
    """Chain getters: the first reads from the items, each next one reads from the previous column.

    >>> df = pl.DataFrame({"name": ["train/3/1.png"], "label": ["3"]})
    >>> Pipe(ColReader("name"), parent_label).column(df).to_list()
    ['3']
    """

    def __init__(self, *getters: Getter | Callable):
        if not getters:
            raise ParameterError("Pipe needs at least one getter")
        self.getters = list(getters)

    def column(self, items: pl.DataFrame) -> pl.Series:
        s = apply_getter(self.getters[0], items)
        for g in self.getters[1:]:
            s = apply_getter(g, pl.DataFrame({"path": s}) if s.dtype == pl.Utf8 else s.to_frame())
        return s


def apply_getter(getter: Getter | Callable | None, items: pl.DataFrame) -> pl.Series:
    """Run a getter over all items. ``None`` means the item itself (its path, or its only column)."""
    if getter is None:
        if "path" in items.columns:
            return items["path"]
        if items.width == 1:
            return items.to_series(0)
        raise DataError(f"no getter given and the items have several columns {items.columns}; "
                         "pass get_x=ColReader('col') / get_y=ColReader('col')")
    if isinstance(getter, Getter):
        return getter.column(items)
    if not callable(getter):
        raise ParameterError(f"a getter must be callable or a Getter, got {getter!r}")
    values = []
    for i, item in enumerate(iter_items(items)):
        try:
            values.append(getter(item))
        except Exception as e:
            name = getattr(getter, "__name__", repr(getter))
            raise type(e)(f"getter {name} failed on item {i} ({item!r}): {e}") from e
    try:
        return pl.Series(values, strict=True) if values else pl.Series([], dtype=pl.Null)
    except (TypeError, pl.exceptions.PolarsError) as e:
        types = sorted({type(v).__name__ for v in values})
        first = {t: next(i for i, v in enumerate(values) if type(v).__name__ == t) for t in types}
        raise DataError(f"getter {getattr(getter, '__name__', getter)!r} returned mixed types {types} "
                        f"(first at items {first}); make it return one type") from e
