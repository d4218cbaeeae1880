"""Getters: find items and read x/y from them, a whole column at a time.

A getter object has ``column(items) -> pl.Series`` (vectorised over the items DataFrame) and
``__call__(item)`` (one item, for users who compose it in their own functions). Plain Python
functions are accepted as getters too; they are mapped over the items one by one, and an error in
one item names that item.
"""
from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import polars as pl

from pipekit.core.component import Component
from pipekit.core.errors import DataError, FieldError, ParameterError, warn
from pipekit.core.registry import register
from pipekit.core.validate import Is, Options, check, is_pandas, unknown_names
from pipekit.data.items import VALUE_COLUMNS, SeriesValues, missing_as_null, table_kind
from pipekit.data.lists import L

#: the image formats pipekit decodes; other files whose extension says image (.heic, .svg) are named when left out
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".jp2",
     ".ppm", ".pgm", ".pbm", ".pnm"})
TEXT_EXTENSIONS = frozenset({".txt"})
_MIME = mimetypes.MimeTypes()  # Python's own table, not this machine's files: the same answer everywhere


# ---------------------------------------------------------------------------------------- finding files
class DataPath(type(Path())):  # type: ignore[misc]
    """A path with the book's ``ls()``: the folders that :func:`pipekit.datasets.path` and ``untar_data`` give,
    and every path joined onto them (``path / "train"``), are DataPaths.

    ``ls()`` lists a folder's entries in sorted order (the same on every machine), as an :class:`L` (chapter 4's
    ``(path/'train'/'3').ls().sorted()``); ``n_max`` stops after that many, ``file_type`` keeps files whose type
    starts with it (``"image"``, ``"text"``), ``file_exts`` keeps those suffixes.

    >>> import pipekit.datasets as D
    >>> [p.name for p in D.path("mnist_tiny").ls()]
    ['labels.csv', 'test', 'train', 'valid']
    >>> [p.name for p in (D.path("mnist_tiny") / "train").ls()]
    ['3', '7']
    >>> (D.path("mnist_tiny") / "train").ls().attrgot("name")
    ['3', '7']
    """

    def ls(self, n_max: int | None = None, file_type: str | None = None,
           file_exts: str | Iterable[str] | None = None) -> L[DataPath]:
        if not self.is_dir():
            raise NotADirectoryError(f"ls(): {str(self)!r} is {'a file' if self.exists() else 'not there'}; ls() "
                                     "lists the entries of a folder")
        exts = None if file_exts is None else {
            e.lower() if e.startswith(".") else "." + e.lower()
            for e in ([file_exts] if isinstance(file_exts, str) else file_exts)}
        found: L[DataPath] = L()
        for entry in sorted(self.iterdir()):
            if exts is not None and entry.suffix.lower() not in exts:
                continue
            if file_type is not None and not (_MIME.guess_type(entry.name)[0] or "").startswith(file_type):
                continue
            found.append(entry)
            if n_max is not None and len(found) >= n_max:
                break
        return found


def _folder_not_list(path: Any, finder: str) -> None:
    """A finder lists the files in a folder: a source that is already a list of files is a mistake to name."""
    if isinstance(path, (list, tuple)) and path and all(isinstance(v, (str, os.PathLike)) for v in path):
        raise DataError(f"get_items={finder} finds the files in a folder, and the source is already a list of "
                        f"{len(path)} files: give the folder, or leave get_items out")


def get_files(path: str | os.PathLike, extensions: Iterable[str] | None = None, recurse: bool = True,
              folders: Sequence[str] | None = None, followlinks: bool = True) -> L[Path]:
    """All files under ``path`` (sorted, so the order is the same on every machine), as an :class:`L`: a list
    with fastai's methods (``.sorted()``, ``.map(f)``, ``.attrgot('name')``, ``files[[0, 2]]``).

    ``extensions`` filters by suffix (case-insensitive); ``folders`` restricts the walk to those
    top-level sub-folders of ``path``: a filter, as fastai's, so a folder named there that ``path`` lacks
    adds no files (the book's ``folders=['train', 'test', 'unsup']`` on a copy without ``unsup``), and only
    when none of them is there is it an error. ``'.'`` among them names the files directly under ``path``
    (``folders=['.', 'train']``: those and the files under ``train/``, not the other folders). Hidden files and
    folders (``.name``) are left out.

    Each real file is listed once: a file reached a second time through a link (a linked folder, a
    linked file, a link back to a folder above it) is dropped, and a folder link that loops back to
    one of its own parents is not followed. Both are counted and reported in one warning naming the
    links, so no item can land in both the training and the validation set by way of a link. Of the
    paths to one file, a path through no link is kept, else the first in walking order.

    >>> import pipekit.datasets as D
    >>> len(get_files(D.path("mnist_tiny") / "train", extensions=[".png"]))
    709
    >>> get_files(D.path("mnist_tiny") / "train", extensions=".png")[[0, -1]].attrgot("name")
    ['7.png', '9999.png']
    """
    _folder_not_list(path, "get_files")
    return _walk(path, extensions, recurse, folders, followlinks)[0]


def _walk(path: str | os.PathLike, extensions: Iterable[str] | None, recurse: bool, folders: Sequence[str] | None,
          followlinks: bool) -> tuple[L[Path], _Walk]:
    path = Path(path)
    if not path.exists():
        # a relative folder is read from the working folder, which a notebook or a script run elsewhere may not expect
        where = "" if path.is_absolute() else f" (looked for {os.path.abspath(path)}, from the working folder {Path.cwd()})"
        raise FileNotFoundError(f"get_files: {path} does not exist{where}")
    if not path.is_dir():
        raise NotADirectoryError(f"get_files: {path} is a file; pass the folder that holds the items")
    if isinstance(extensions, str):  # extensions=".png": one suffix, as fastai reads it
        extensions = [extensions]
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions} if extensions else None
    if isinstance(folders, str):  # folders="train": one folder, as fastai reads it
        folders = [folders]
    roots = [path / f for f in folders] if folders else [path]
    if folders:  # a filter on the folders under path, as fastai's: those of them that are not there hold no files
        roots = [r for r in roots if r.is_dir()]
        if not roots:
            there = sorted(e.name for e in path.iterdir() if e.is_dir() and not e.name.startswith("."))
            raise FileNotFoundError(f"get_files: none of folders={list(folders)} is a folder in {path} (its folders: "
                                    f"{there[:10]}{' ...' if len(there) > 10 else ''}); name folders that are there, "
                                    f"or leave folders out to list every file under {path}")
    walk = _Walk(path, exts, followlinks)
    top = os.path.realpath(path)
    for root in roots:
        real = os.path.realpath(root)
        # '.' among folders (or path itself) names the files directly under path, as fastai's folders=['.', 'train']
        # does: the other folders named are walked, not every folder under path
        walk.folder(str(root), real, via=None, recurse=recurse and not (folders and real == top))
    walk.follow_links(recurse)
    walk.report()
    return L(sorted(Path(p) for p in walk.kept.values())), walk


class _Walk:
    """A sorted walk that lists each real file once and reports the links that lead to files again.

    Plain folders and files are walked first and links afterwards, so a file is listed by a path
    through no link whenever it has one; a linked folder that was already walked is not walked again.
    """

    def __init__(self, base: Path, exts: set[str] | None, followlinks: bool):
        self.base, self.exts, self.followlinks = base, exts, followlinks
        self.kept: dict[str, str] = {}  # real path -> listed path
        self.visited: set[str] = set()  # real paths of the folders walked
        self.folder_links: list[tuple[str, str, str]] = []  # (link, real target, folder holding the link)
        self.file_links: list[tuple[str, str]] = []  # (link, real target)
        self.dropped: dict[str, int] = {}  # link -> files it led to a second time
        self.loops: dict[str, tuple[str, int]] = {}  # link -> (the folder above it that it points to, files there)
        self.unreadable: list[str] = []
        self.left_out: dict[str, int] = {}  # extension -> files not listed for it

    def _rel(self, p: str) -> str:
        return os.path.relpath(p, self.base)

    def _under(self, real: str) -> int:
        return sum(1 for r in self.kept if r.startswith(real + os.sep))

    def folder(self, folder: str, real: str, via: str | None, recurse: bool) -> None:
        if real in self.visited:  # reached again inside a linked folder
            if via is not None:
                self.dropped[via] = self.dropped.get(via, 0) + self._under(real)
            return
        self.visited.add(real)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            self.unreadable.append(f"{self._rel(folder)} ({e.strerror or e})")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not recurse or (entry.is_symlink() and not self.followlinks):
                    continue
                if entry.is_symlink():
                    self.folder_links.append((entry.path, os.path.realpath(entry.path), real))
                else:
                    self.folder(entry.path, os.path.join(real, entry.name), via, recurse)
            elif self.exts is None or os.path.splitext(entry.name)[1].lower() in self.exts:
                if entry.is_symlink():
                    self.file_links.append((entry.path, os.path.realpath(entry.path)))
                else:
                    self._file(entry.path, os.path.join(real, entry.name), via)
            else:
                ext = os.path.splitext(entry.name)[1].lower()
                self.left_out[ext] = self.left_out.get(ext, 0) + 1

    def follow_links(self, recurse: bool) -> None:
        i = 0
        while i < len(self.folder_links):  # following a link can find more links
            link, target, holder = self.folder_links[i]
            i += 1
            if target == holder or holder.startswith(target + os.sep):
                self.loops[link] = (target, self._under(target))
            else:
                self.folder(link, target, link, recurse)
        for link, target in self.file_links:
            self._file(link, target, link)

    def _file(self, listed: str, real: str, via: str | None) -> None:
        if real not in self.kept:
            self.kept[real] = listed
        else:
            key = via if via is not None else listed
            self.dropped[key] = self.dropped.get(key, 0) + 1

    def report(self) -> None:
        notes = [f"{self._rel(link)} -> {os.readlink(link)!r} loops back to the folder {self._rel(target)!r} "
                 f"above it and was not followed (it would list the {again} file(s) there again, endlessly)"
                 for link, (target, again) in sorted(self.loops.items())]
        dropped = {k: c for k, c in self.dropped.items() if c}
        if dropped:
            notes.append(f"{sum(dropped.values())} duplicate file(s) reached a second time were skipped: " + ", ".join(
                f"{c} through {self._rel(k)}" + (f" -> {os.readlink(k)!r}" if os.path.islink(k) else "")
                for k, c in sorted(dropped.items())))
        if self.unreadable:
            notes.append(f"{len(self.unreadable)} folder(s) could not be read: {', '.join(self.unreadable[:10])}")
        if notes:
            warn(f"get_files({str(self.base)!r}) lists each file once: " + "; ".join(notes))


def get_image_files(path: str | os.PathLike, recurse: bool = True, folders: Sequence[str] | None = None) -> L[Path]:
    """Image files under ``path``, an :class:`L` (see :func:`get_files`): ``get_image_files(path).sorted()``.

    >>> import pipekit.datasets as D
    >>> len(get_image_files(D.path("mnist_tiny"), folders=["train", "valid"]))
    1408
    """
    _folder_not_list(path, "get_image_files")
    files, walk = _walk(path, IMAGE_EXTENSIONS, recurse, folders, True)
    # files whose extension says image (Python's own table of types) but that pipekit cannot decode (.heic, .svg):
    # named, not lost quietly
    looks = {e: n for e, n in sorted(walk.left_out.items())
             if e and (_MIME.guess_type("x" + e)[0] or "").startswith("image/")}
    if looks:
        warn(f"get_image_files({str(path)!r}) left out {sum(looks.values())} file(s) in image formats "
             f"pipekit does not decode: " + ", ".join(f"{n} {e}" for e, n in looks.items())
             + f"; convert them to one of {sorted(IMAGE_EXTENSIONS)} to use them")
    return files


def get_text_files(path: str | os.PathLike, recurse: bool = True, folders: Sequence[str] | None = None) -> L[Path]:
    """``.txt`` files under ``path``, an :class:`L` (see :func:`get_files`).

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pipekit.data import get_text_files
    >>> root = Path(tempfile.mkdtemp())
    >>> for f in ("pos/1.txt", "neg/2.txt", "neg/notes.md"):
    ...     (root / f).parent.mkdir(exist_ok=True); _ = (root / f).write_text("a review")
    >>> [p.relative_to(root).as_posix() for p in get_text_files(root)]
    ['neg/2.txt', 'pos/1.txt']
    >>> [p.name for p in get_text_files(root, folders=["pos"])]
    ['1.txt']
    """
    _folder_not_list(path, "get_text_files")
    return get_files(path, extensions=TEXT_EXTENSIONS, recurse=recurse, folders=folders)


def check_split_folders(path: str | os.PathLike, train: str, valid: str, who: str) -> None:
    """Refuse a folder without the ``train``/``valid`` sub-folders a factory reads, naming the folders there and
    the two fixes (``valid_pct`` for class folders straight under ``path``, or the names of the split folders)."""
    root = Path(path)
    missing = [name for name in (train, valid) if not (root / name).is_dir()]
    if not missing or not root.is_dir():
        return  # a missing path is named by the finder itself
    there = sorted(e.name for e in root.iterdir() if e.is_dir() and not e.name.startswith("."))
    raise DataError(f"{who}: {str(root)!r} has no {' or '.join(repr(m) for m in missing)} folder (its folders: "
                    f"{there[:10]}{' ...' if len(there) > 10 else ''}); with the class folders directly under it, "
                    f"pass valid_pct=0.2 (and seed=42) to split at random, or name the split folders with "
                    f"train=..., valid=...")


#: pipekit's item finders (a recipe's ``get_items``): each lists the files of a folder, where a getter reads one item's
#: value. They are registered as getters, so a saved DataBlock keeps its get_items (a user's function is left out);
#: :func:`check_item_getters` keeps them out of every other field a file's getter or function stands in
ITEM_FINDERS = (get_files, get_image_files, get_text_files)
for _finder in ITEM_FINDERS:
    register(_finder, kind="getter")


# ---------------------------------------------------------------------------------------- item access
def path_column(items: pl.DataFrame, who: str) -> pl.Series:
    """The column holding each item's path: ``path`` if present, else the only column."""
    if "path" in items.columns:
        return items["path"].cast(pl.Utf8)
    if items.width == 1:
        return items.to_series(0).cast(pl.Utf8)
    raise DataError(f"{who}: the items have no 'path' column (columns: {items.columns}); "
                     f"read the path first, e.g. get_y=Pipe(ColReader('name'), {who})")


class Row(dict):
    """A table's row as a user function sees it: a dict of column -> value, whose columns read as attributes too,
    as a pandas row's do (fastai's ``get_x=lambda r: path/r.fname``). A column named like a dict method
    (``items``, ``values``...) is read as ``r['values']``.

    >>> r = Row({"fname": "3/7.png", "label": "3"})
    >>> r.fname, r["label"], r == {"fname": "3/7.png", "label": "3"}
    ('3/7.png', '3', True)
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the row has no column {name!r}; its columns: {list(self)}") from None

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *(k for k in self if isinstance(k, str) and k.isidentifier())]


def holds_values(items: pl.DataFrame) -> bool:
    """Whether ``items`` are bare values, each given to a function as it is (:data:`VALUE_COLUMNS`): the one column
    a list or a Series makes (``path``, ``item``, a pandas Series' own, :class:`SeriesValues`), or a table whose only
    column is named ``item`` or ``path``; else they are a table's rows."""
    return items.columns in VALUE_COLUMNS or (isinstance(items, SeriesValues) and items.width == 1)


def item_at(items: pl.DataFrame, i: int) -> Any:
    """One item as a user function (a getter, a splitter) sees it: a Path for files (the ``path`` column a list of
    them makes), the value itself for other bare values (the ``item`` column a list or a Polars Series makes, the
    column a pandas Series makes, named as it is), else, for a table's row, a :class:`Row`, however many columns the
    table has (:func:`holds_values`). A table's goes by its columns' names alone (:data:`VALUE_COLUMNS`): a table whose
    only column is named ``item`` or ``path`` gives its values (a Path for ``path``), not rows; another name for that
    column gives rows.

    >>> item_at(pl.DataFrame({"item": ["a text"]}), 0), item_at(pl.DataFrame({"fname": ["3/7.png"]}), 0).fname
    ('a text', '3/7.png')
    """
    if holds_values(items):
        value = items.to_series(0)[i]
        return Path(value) if items.columns == ["path"] else value
    return Row(items.row(i, named=True))


def iter_items(items: pl.DataFrame) -> Iterable[Any]:
    """Each item as :func:`item_at` gives it, in order."""
    if items.columns == ["path"]:
        return map(Path, items["path"])
    if holds_values(items):
        return iter(items.to_series(0))
    return map(Row, items.iter_rows(named=True))


def one_row(item: Any, who: str, by_position: bool = False) -> pl.DataFrame:
    """``item``, one table row given by hand to the getter ``who`` (a dict, a :class:`Row`, a pandas row such as
    ``df.iloc[0]``, a named tuple such as ``df.itertuples()`` gives, a one-row Polars frame), as a one-row frame of
    its columns (NumPy scalars read as the Python values they hold, a missing value, pandas' NaN, NA or NaT, as
    None: :func:`~pipekit.data.items.missing_as_null`, as a table's row reads). With ``by_position`` (a getter that
    reads columns by position only), a plain tuple or list (a Polars ``df.row(0)``) is a row too, its columns
    ``'0'``, ``'1'``...

    >>> one_row({"name": "3/7.png", "label": 3}, "ColReader").row(0)
    ('3/7.png', 3)
    >>> one_row(("3/7.png", 3), "ColReader(1)", by_position=True).row(0, named=True)
    {'0': '3/7.png', '1': 3}
    """
    if isinstance(item, pl.DataFrame) and item.height == 1:
        return item
    if isinstance(item, dict):
        fields = item
    elif is_pandas(item) and getattr(item, "ndim", 0) == 1:
        fields = item.to_dict()
    elif isinstance(item, tuple) and hasattr(item, "_asdict"):
        fields = item._asdict()
    elif isinstance(item, (tuple, list)) and by_position:
        fields = dict(enumerate(item))
    elif isinstance(item, (tuple, list)):
        raise DataError(f"{who} was given the {type(item).__name__} {item!r:.80} as one item, whose values have no "
                        "column names to read; give a row that names them (a dict such as dict(zip(columns, "
                        "values)), a pandas row such as df.iloc[0], a named tuple such as df.itertuples() gives), "
                        "or read it by position (ColReader(0))")
    else:
        raise DataError(f"{who} was given {type(item).__name__} {item!r:.80} as one item; give a row (a dict, a "
                        "pandas row such as df.iloc[0], a named tuple) or a path")
    row = missing_as_null({k: v.item() if isinstance(v, np.generic) else v for k, v in fields.items()})
    return pl.DataFrame([row])


def rows_column(items: pl.DataFrame) -> pl.Series:
    """Each item's whole row, as one struct column (a value per row is a dict of column -> value): what a block that
    keeps its items as they are (the book's ``DataBlock()`` of a table) is given when no getter picks a column.

    >>> rows_column(pl.DataFrame({"fname": ["a.jpg", "b.jpg"], "labels": ["cat", "dog cat"]})).to_list()
    [{'fname': 'a.jpg', 'labels': 'cat'}, {'fname': 'b.jpg', 'labels': 'dog cat'}]
    """
    return items.select(pl.struct(pl.all()).alias("row")).to_series()


class Getter(Component):
    """Base class for vectorised getters: ``column(items)`` reads a whole column; calling one on a single
    item works too, for users who compose getters in their own functions.

    >>> import polars as pl
    >>> from pipekit.data import Getter
    >>> class UpperName(Getter):
    ...     def __init__(self, col="name"):
    ...         self.col = col
    ...     def column(self, items):
    ...         return items[self.col].str.to_uppercase()
    >>> df = pl.DataFrame({"name": ["cat", "dog"]})
    >>> UpperName().column(df).to_list(), UpperName()({"name": "cow"}), UpperName()
    (['CAT', 'DOG'], 'COW', UpperName())
    """

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    registry_kind = "getter"

    def column(self, items: pl.DataFrame) -> pl.Series:
        raise NotImplementedError

    def check_build(self, items: pl.DataFrame, values: pl.Series) -> None:
        """Called once per DataBlock build with the items and what this getter gave them, to warn about a
        result that is legal but almost surely not what the user meant. Nothing to check by default."""

    def __call__(self, item: Any) -> Any:
        from pipekit.data.items import path_frame

        df = path_frame([item]) if isinstance(item, (str, os.PathLike)) else one_row(
            item, repr(self), by_position=self._reads_positions())
        value = self.column(df)[0]
        return value.to_list() if isinstance(value, pl.Series) else value  # a list of labels as a list

    def _reads_positions(self) -> bool:
        """Whether this getter reads its columns by position only, so that a plain tuple or list is a row to it."""
        return False

    def on_items(self, items: Any) -> pl.Series:
        """This getter over many items at once: a list (or array, or Series) of paths or values, or a table, read
        as a DataBlock reads its source. It is what a getter does as a step of a
        :class:`~pipekit.data.TfmdLists` or :class:`~pipekit.data.Pipeline` (``TfmdLists(files, [parent_label,
        Categorize()])``).

        >>> parent_label.on_items(["train/3/1.png", "train/7/2.png"]).to_list()
        ['3', '7']
        """
        from pipekit.data.items import to_items

        return apply_getter(self, to_items(items))


class ColReader(Getter):
    """Read column(s) ``cols`` of a table of items, optionally adding a prefix/suffix or splitting labels.

    >>> import polars as pl
    >>> df = pl.DataFrame({"name": ["a.png", "b.png"], "tags": ["x y", "y"]})
    >>> ColReader("name", pref="imgs/").column(df).to_list()
    ['imgs/a.png', 'imgs/b.png']
    >>> ColReader("tags", label_delim=" ").column(df).to_list()
    [['x', 'y'], ['y']]
    >>> ColReader(0).column(df).to_list()  # a column's position, as the book's ColReader(0)
    ['a.png', 'b.png']
    >>> ColReader("name", pref="imgs/", suff=".jpg").column(pl.DataFrame({"name": ["a"]})).to_list()  # fastai's suff
    ['imgs/a.jpg']
    """

    param_constraints = {
        "pref": Is(lambda v: isinstance(v, str), "text (or a folder's path) put before each value"),
        "suffix": Is(lambda v: isinstance(v, str), "text put after each value"),
        "suff": Is(lambda v: v is None or isinstance(v, str), "text put after each value, or None"),
        "label_delim": Is(lambda v: v is None or (isinstance(v, str) and v != ""), "None or the text between labels"),
    }

    def __init__(self, cols: str | int | Sequence[str | int], pref: str | os.PathLike = "", suffix: str = "",
                 label_delim: str | None = None, suff: str | None = None):
        def one(c: Any) -> bool:
            return isinstance(c, str) or bool(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 0)

        if isinstance(cols, (list, tuple)):
            if not cols:
                raise ParameterError("ColReader: cols is empty; name at least one column")
            if not all(one(c) for c in cols):
                raise ParameterError(f"ColReader: cols must be column names or positions (0 is the first column), "
                                     f"got {cols!r}")
            self.cols: str | int | list[str | int] = [c if isinstance(c, str) else int(c) for c in cols]
            if len(set(self.cols)) != len(self.cols):
                raise ParameterError(f"ColReader: cols names a column twice: {cols!r}")
        elif one(cols):
            self.cols = cols if isinstance(cols, str) else int(cols)  # type: ignore[arg-type]
        else:
            raise ParameterError(f"ColReader: cols must be a column name, a column's position (0 is the first, as "
                                 f"in ColReader(0)) or a list of them, got {cols!r}")
        # a folder prefix joins with a separator, as a path would
        self.pref = (str(pref).rstrip("/") + "/") if isinstance(pref, os.PathLike) else pref  # type: ignore[assignment]
        if suff is not None:  # fastai's name for it
            check("ColReader", suff=(suff, self.param_constraints["suff"]))
            if suffix:
                raise ParameterError(f"ColReader: give the suffix once, as suffix= or as suff=, got suffix={suffix!r} "
                                     f"and suff={suff!r}")
            suffix = suff
        self.suffix, self.label_delim, self.suff = suffix, label_delim, None
        self.check_params()

    def _reads_positions(self) -> bool:
        """Columns given by position only (``ColReader(0)``): a plain tuple or list is read by position, as
        ``ColReader(1)(("train/3/a.png", 3))`` gives ``3``."""
        return all(isinstance(c, int) for c in (self.cols if isinstance(self.cols, list) else [self.cols]))

    def column(self, items: pl.DataFrame) -> pl.Series:
        given = self.cols if isinstance(self.cols, list) else [self.cols]
        past = [c for c in given if isinstance(c, int) and c >= items.width]
        if past:
            raise DataError(f"ColReader: column position(s) {past} past the {items.width} columns of the items "
                            f"({items.columns}); positions count from 0")
        names = [items.columns[c] if isinstance(c, int) else c for c in given]
        missing = [c for c in names if c not in items.columns]
        if missing:
            raise DataError(f"ColReader: column(s) {missing} not in the items; "
                            f"{unknown_names(missing, items.columns)}{_one_packed_table(items)}{_bare_values(items)}")
        if isinstance(self.cols, list) and len(self.cols) > 1:
            return items.select(pl.struct(names).alias("_".join(names))).to_series()
        s = items[names[0]]
        if self.pref or self.suffix:
            s = items.select((pl.lit(self.pref) + pl.col(names[0]).cast(pl.Utf8) + pl.lit(self.suffix))
                             .alias(names[0])).to_series()
        if self.label_delim is not None:
            s = s.cast(pl.Utf8).str.split(self.label_delim).list.eval(pl.element().filter(pl.element() != ""))
        return s


def _one_packed_table(items: pl.DataFrame) -> str:
    """What to do where the items are one path to a table a DataBlock does not read as a table (a ``.csv.gz``, a
    ``.zip``, a ``.txt``: one file item there), for ColReader's message; empty otherwise."""
    if items.columns != ["path"] or items.height != 1:
        return ""
    path = str(items["path"][0])
    if table_kind(path) != "packed":
        return ""
    return (f" (the source {path} is one file to a DataBlock, which reads .csv, .tsv, Parquet and Arrow files as "
            "tables: read it with pl.read_csv(path) and pass the frame, or use Tabular / "
            "TabularDataLoaders.from_csv, which read it)")


def _bare_values(items: pl.DataFrame) -> str:
    """What to do where the items are bare values (a list, a pandas or Polars Series: the made-up ``item`` column of
    :data:`VALUE_COLUMNS`) and a column was asked for, for ColReader's message; empty otherwise."""
    if items.columns != ["item"]:
        return ""
    return (" (the items are bare values, a list or a Polars Series, whatever the Series is named, not a table's rows: "
            "give the table, or its column as a one-column frame (df[['name']]), for ColReader to read a column, or "
            "leave the getter out to take each value as it is)")


def _holds_any(folder: str, suffixes: set[str]) -> bool:
    return any(os.path.splitext(f)[1].lower() in suffixes for _, _, files in os.walk(folder) for f in files)


class ParentLabel(Getter):
    """The name of the folder an item's file is in (``train/3/7463.png`` -> ``'3'``)."""

    def column(self, items: pl.DataFrame) -> pl.Series:
        p = path_column(items, "parent_label")
        return p.str.replace_all(r"\\", "/").str.split("/").list.get(-2, null_on_oob=True).alias("parent_label")

    def __call__(self, item: Any) -> str:
        return Path(item).parent.name

    def check_build(self, items: pl.DataFrame, values: pl.Series) -> None:
        """Warn when every item has one label, or when a class folder beside the labelled ones holds no file of the
        items' kind (no image beside image items, no .txt file beside .txt items).

        Class folders are the sub-folders of the folders that hold the class folders (``train/`` and
        ``valid/`` in a GrandparentSplitter layout); hidden folders are not classes.
        """
        paths = path_column(items, "parent_label").str.replace_all(r"\\", "/")
        parents = paths.str.extract(r"^(.*)/[^/]*$", 1).fill_null("").unique().sort()
        notes = []
        labels = values.drop_nulls().unique()
        if len(labels) == 1 and len(items) > 1:
            notes.append(f"all {len(items)} items have the label {labels[0]!r}, from the folder(s) "
                         f"{parents.head(5).to_list()}: a classifier needs two classes or more; point the "
                         "DataBlock at the folder that holds the class folders")
        holding: set[str] = set()  # every folder with an item in it or below it
        for p in parents:
            while p and p not in holding:
                holding.add(p)
                p = p.rpartition("/")[0]
        # the kind of file the items are (images, texts): a class folder without one of them is empty
        suffixes = set(paths.str.extract(r"(\.[^./]*)$", 1).str.to_lowercase().drop_nulls().unique().to_list())
        kinds = suffixes if suffixes else set(IMAGE_EXTENSIONS)
        what = ("image" if kinds <= set(IMAGE_EXTENSIONS)
                else f"{'/'.join(sorted(kinds)[:4])} file like the items")
        empty = []
        for top in sorted({os.path.dirname(p) for p in parents if p}):
            try:
                subs = sorted(e.name for e in os.scandir(top or ".") if e.is_dir() and not e.name.startswith("."))
            except OSError:
                continue
            # a folder with items that get_items left out was left out on purpose (a subset)
            empty += [sub for sub in (f"{top}/{name}" if top else name for name in subs)
                      if sub not in holding and not _holds_any(sub, kinds)]
        if empty:
            notes.append(f"{len(empty)} class folder(s) hold no {what}, so their class is missing: {empty[:10]}")
        if notes:
            warn("parent_label: " + "; ".join(notes))

    def __repr__(self) -> str:
        return "parent_label"


#: ``get_y=parent_label`` labels each file by its folder
parent_label = ParentLabel()


class FileName(Getter):
    """The file name of each item's path (``train/3/7463.png`` -> ``'7463.png'``); chain it with
    :class:`Pipe` to label by the name alone (``Pipe(FileName(), RegexLabeller(r'^(.+)_\\d+.jpg$'))``).

    >>> FileName()("images/great_pyrenees_17.jpg")
    'great_pyrenees_17.jpg'
    """

    def column(self, items: pl.DataFrame) -> pl.Series:
        p = path_column(items, "FileName")
        return p.str.replace_all(r"\\", "/").str.split("/").list.get(-1, null_on_oob=True).alias("name")

    def __call__(self, item: Any) -> str:
        return Path(item).name


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
        self.pat, self.match = pat, match

    def _regex(self) -> str:
        return ("^" + self.pat) if self.match and not self.pat.startswith("^") else self.pat

    def state_from_data(self, state: dict[str, Any]) -> None:
        """A pattern read from a file runs in Polars' linear-time engine; one that engine refuses (a look-around, a
        back-reference) would run in Python's backtracking ``re``, so it must pass
        :func:`pipekit.text.regex_check.check_pattern`, which bounds its time on a path (``(?=(a+)+$)(x)`` would
        take seconds on a path of 26 a's, doubling with each one more)."""
        from pipekit.text.regex_check import check_pattern

        super().state_from_data(state)
        if _polars_runs(self._regex()):
            return
        try:
            check_pattern(self._regex())
        except ValueError as e:
            raise FieldError("params.pat", f"= {self.pat[:120]!r} needs Python's backtracking regex engine (Polars' "
                                           f"refuses it) and its time on a path is not bounded: {e}; write the pattern "
                                           "without look-arounds and back-references") from None

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
        from pipekit.data.items import path_frame

        return self.column(path_frame([item]))[0]


def _polars_runs(pattern: str) -> bool:
    """Whether Polars' regex engine (Rust's ``regex``: time linear in the text) takes ``pattern``."""
    try:
        pl.Series([""], dtype=pl.Utf8).str.extract(pattern, 1)
    except Exception:  # Polars refuses what its engine does not support
        return False
    return True


class Pipe(Getter):
    """Chain getters: the first reads from the items, each next one reads from the previous column.

    >>> import polars as pl
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
            # a function is given each value itself (the made-up ``item`` column), a getter reads the column
            s = apply_getter(g, pl.DataFrame({"path": s}) if s.dtype == pl.Utf8 else s.to_frame(
                None if isinstance(g, Getter) else "item"))
        return s


#: the parts of a path :func:`using_attr` reads, as ``pathlib.Path`` names them
PATH_ATTRS = ("name", "stem", "suffix", "parent")


def _path_part(paths: pl.Series, attr: str) -> pl.Series:
    """``getattr(Path(p), attr)`` for every path, as text, on the whole column (``pathlib``'s rules: a suffix is
    the last ``.xxx`` of the name, never a leading dot; the parent of a bare name is ``'.'``)."""
    p = paths.str.replace_all(r"\\", "/")
    name = p.str.replace(r"(.)/+$", "$1").str.split("/").list.get(-1, null_on_oob=True)
    if attr == "name":
        return name
    if attr == "parent":
        above = p.str.replace(r"(.)/+$", "$1").str.extract(r"^(.*)/[^/]*$", 1).str.strip_chars_end("/")
        return pl.select(pl.when(above.is_null()).then(pl.lit(".")).when(above == "").then(pl.lit("/"))
                         .otherwise(above)).to_series()
    suffix = name.str.extract(r"^.+(\.[^.]+)$", 1).fill_null("")
    if attr == "suffix":
        return suffix
    return pl.select(name.str.head(name.str.len_chars() - suffix.str.len_chars())).to_series()


class UsingAttr(Getter):
    """``f`` applied to one part of each item's path: ``attr`` is ``'name'``, ``'stem'``, ``'suffix'`` or
    ``'parent'``, read as ``pathlib.Path`` reads it (made with :func:`using_attr`).

    A getter (``RegexLabeller``, ``FileName``, ...) reads the part as a path; a plain function gets it as text
    (as ``Path(item).name`` is), or as a ``Path`` for ``'parent'``.

    >>> UsingAttr(RegexLabeller(r"^(.+)_\\d+\\.jpg$"), "name")("images/great_pyrenees_17.jpg")
    'great_pyrenees'
    """

    param_constraints = {"f": Is(callable, "a getter or a function of the part"), "attr": Options(*PATH_ATTRS)}

    def __init__(self, f: Getter | Callable[[Any], Any], attr: str = "name"):
        self.f, self.attr = f, attr
        self.check_params()

    def column(self, items: pl.DataFrame) -> pl.Series:
        part = _path_part(path_column(items, "using_attr"), self.attr)
        if isinstance(self.f, Getter) or self.attr == "parent":
            return apply_getter(self.f, pl.DataFrame({"path": part}))
        return apply_getter(self.f, pl.DataFrame({"item": part}))  # a function is given the part itself


def _name_format_problem(fmt: Any) -> str | None:
    """Why ``fmt`` is no :class:`PathFormat` name (None when it is one): text whose only fields are ``{name}``,
    ``{stem}``, ``{suffix}`` and ``{parent}``, naming a file under the getter's folder."""
    import string

    if not isinstance(fmt, str) or not fmt:
        return (f"takes the text of a file name with fields in braces, e.g. '{{stem}}_P{{suffix}}', got "
                f"{fmt!r:.60}")
    try:
        parts = list(string.Formatter().parse(fmt))
    except ValueError as e:
        return (f"{fmt!r} is not a format string ({e}): put each of the fields {{name}}, {{stem}}, {{suffix}} and "
                "{parent} in braces, and write a literal brace twice ('{{', '}}')")
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in PATH_ATTRS or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            return (f"{fmt!r} has the field {shown}; the fields are {{name}}, {{stem}}, {{suffix}} and {{parent}} of "
                    "the item's path, each plain (no position, attribute, index, conversion or format); write a "
                    "literal brace twice ('{{', '}}')")
    sample = fmt.format(**{a: "x" for a in PATH_ATTRS}).replace("\\", "/")
    if sample.startswith("/") or re.match(r"^[A-Za-z]:", sample) or ".." in sample.split("/"):
        return (f"{fmt!r} names a file outside the getter's folder (a '..' or an absolute path); give as path the "
                "folder that holds the files (e.g. path.parent) and a name under it")
    return None


def _folder_prefix(path: str) -> str:
    """What a name under the folder ``path`` starts with: ``path/``; the root stays ``/``, and ``""`` (or ``.``
    written as ``""``) names files relative to the working folder, as ``Path("") / name`` does.

    >>> _folder_prefix("/data/labels/"), _folder_prefix("/"), _folder_prefix("")
    ('/data/labels/', '/', '')
    """
    if not path:
        return ""
    stripped = path.rstrip("/\\")
    return stripped + "/" if stripped else path[0]


class PathFormat(Getter):
    """The file under ``path`` whose name is ``fmt`` filled with the parts of each item's path: ``{name}``
    (``7.png``), ``{stem}`` (``7``), ``{suffix}`` (``.png``) and ``{parent}`` (the name of the folder holding the
    file, ``3`` for ``train/3/7.png``, as :data:`parent_label` reads it). It is how a segmentation recipe finds each
    image's mask (``vision.image_paths_with(path/'labels', '{stem}_P{suffix}')``); being text, it is stored with an
    exported model, where a function of one's own is not. The file named must be under ``path``.

    >>> PathFormat("camvid/labels", "{stem}_P{suffix}")("camvid/images/0001TP_006690.png")
    'camvid/labels/0001TP_006690_P.png'
    """

    param_constraints = {
        "path": Is(lambda v: isinstance(v, str), "the folder (text or a path) that holds the files"),
        "fmt": Is(lambda v: _name_format_problem(v) is None, "a file name with the fields {name}, {stem}, {suffix} "
                                                              "and {parent} in braces, under path"),
    }

    def __init__(self, path: str | os.PathLike = ".", fmt: str = "{name}"):
        self.path = str(path) if isinstance(path, os.PathLike) else path
        self.fmt = fmt
        problem = _name_format_problem(fmt)
        if problem is not None:
            raise ParameterError(f"PathFormat: fmt={fmt!r:.80}: {problem}")
        self.check_params()

    def column(self, items: pl.DataFrame) -> pl.Series:
        import string

        paths = path_column(items, "PathFormat").str.replace_all(r"\\", "/")
        parts: dict[str, pl.Series] = {}  # each field the format uses, read once from the column
        pieces: list[pl.Expr] = [pl.lit(_folder_prefix(self.path))]
        for text, field, _, _ in string.Formatter().parse(self.fmt):
            if text:
                pieces.append(pl.lit(text))
            if field is not None:
                if field not in parts:  # parent: the folder's name only (parent_label's), never a path above it
                    parts[field] = paths.str.split("/").list.get(-2, null_on_oob=True).fill_null("") \
                        if field == "parent" else _path_part(paths, field)
                pieces.append(pl.lit(parts[field]))
        # on the items' frame, with an empty piece of each path: one name per item even from a format with no field
        pieces.append(pl.col("p").str.slice(0, 0))
        out = paths.to_frame("p").select(pl.concat_str(pieces)).to_series()
        # a part of a path spelled '..' (an item 'a/../b.png') would lead out of the folder
        bad = out.str.slice(len(self.path)).str.contains(r"(^|/)\.\.(/|$)")
        if bad.any():
            i = int(bad.arg_true()[0])
            raise DataError(f"PathFormat: item {i} ({paths[i]!r}) gives {out[i]!r}, outside {self.path!r}; give the "
                            "items' paths without '..' (Path.resolve())")
        return out.alias("path")


def using_attr(f: Getter | Callable[[Any], Any], attr: str) -> UsingAttr:
    """A getter applying ``f`` to the ``attr`` part of each item's path, as fastai's ``using_attr``: the book's
    ``get_y=using_attr(RegexLabeller(r'(.+)_\\d+.jpg$'), 'name')`` labels a pet by its file name.

    ``attr`` is one of ``'name'``, ``'stem'``, ``'suffix'``, ``'parent'``; the getter is a component, so a
    DataBlock using it is exported with its learner (with ``f`` a getter, not a function of one's own).

    >>> import polars as pl
    >>> get_y = using_attr(RegexLabeller(r"^(.+)_\\d+.jpg$"), "name")
    >>> get_y.column(pl.DataFrame({"path": ["pets/great_pyrenees_17.jpg", "pets/Abyssinian_3.jpg"]})).to_list()
    ['great_pyrenees', 'Abyssinian']
    """
    return UsingAttr(f, attr)


def is_item_getter(g: Any) -> bool:
    """Whether ``g``, read from a file, may be called on each item's value: nothing (the item itself), a getter
    component, or a registered function; not a class (calling one builds an object of it), another component, nor an
    item finder (:data:`ITEM_FINDERS`, which lists a folder)."""
    return g is None or isinstance(g, Getter) or (callable(g) and not isinstance(g, (type, Component))
                                                  and not any(g is f for f in ITEM_FINDERS))


def called_on_items(g: Any, field: str) -> list[tuple[str, Any]]:
    """``g`` and every getter or function it calls on the items in turn (UsingAttr's ``f``, each of Pipe's
    ``getters``, and theirs), each with its field in the record: a file's getter is checked all the way down."""
    found = [(field, g)]
    if isinstance(g, Getter):
        for k, v in g.get_params(deep=False).items():
            for j, h in enumerate(v) if isinstance(v, (list, tuple)) else [(None, v)]:
                if callable(h):
                    found += called_on_items(h, f"{field}.params.{k}{'' if j is None else f'[{j}]'}")
    return found


def check_item_getters(g: Any, field: str, takes: str) -> None:
    """Refuse a getter or function read from a file, at ``field`` of its record, that is or calls on the items
    (:func:`called_on_items`) something :func:`is_item_getter` refuses: a :class:`FieldError` names that one's field,
    says what it is and what the field ``takes`` (a DataBlock's getters, a ``Transform(f)``'s functions)."""
    for where, h in called_on_items(g, field):
        if callable(h) and not is_item_getter(h):
            what = (f"the class {getattr(h, '__qualname__', h)!s:.60}, which builds an object when called"
                    if isinstance(h, type) else f"a {type(h).__name__}, not a getter" if isinstance(h, Component)
                    else f"{getattr(h, '__name__', h)!s:.60}, which lists the files of a folder (a recipe's get_items)")
            raise FieldError(where, f"is {what}; {takes}; the file is damaged or was not written by pipekit")


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
            msg = f"getter {name} failed on item {i} ({item!r}): {e}"
            try:  # the same kind of error, so a caller's except clause still catches it
                again = type(e)(msg)
            except Exception:  # an error type that takes other arguments (UnicodeDecodeError)
                again = None
            raise (again or DataError(msg)) from e
    if values and isinstance(values[0], PurePath):  # paths are read as their text (a file to open, or a label)
        values = [str(v) if isinstance(v, PurePath) else v for v in values]
    if not values:
        return pl.Series([], dtype=pl.Null)
    from pipekit.data.items import one_type_column

    return one_type_column("", values, f"getter {getattr(getter, '__name__', getter)!r} returned",
                           fix="make it return one type")
