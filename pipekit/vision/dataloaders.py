"""The book's one-line image data: ``ImageDataLoaders`` and ``SegmentationDataLoaders``.

Each factory builds a :class:`~pipekit.data.DataBlock` from the book's parameter names and calls its
``dataloaders``; there is no second pipeline, so what a factory gives is what the DataBlock spelled out
gives (the docstrings say which). The keyword arguments not named here (``bs``, ``val_bs``, ``shuffle``,
``device``, ``num_workers``, ``drop_last``) go to ``DataBlock.dataloaders``; ``seed`` fixes both the split
and the batches. Any other keyword is refused in the name of the factory called, naming the close ones.

>>> import pipekit.datasets as D
>>> from pipekit.vision import Resize
>>> path = D.path("mnist_tiny")
>>> dls = ImageDataLoaders.from_folder(path, item_tfms=Resize(28), img_cls="L", bs=64, seed=0)   # doctest: +SKIP
>>> dls.vocab                                                                                   # doctest: +SKIP
['3', '7']
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from pipekit.core.errors import DataError, ParameterError
from pipekit.core.validate import Is, Options, check
from pipekit.data import (CategoryBlock, ColReader, ColSplitter, DataBlock, DataLoaders, FileName,
                          GrandparentSplitter, MultiCategoryBlock, Pipe, RandomSplitter, RegexLabeller, get_image_files,
                          parent_label)
from pipekit.data.datablock import check_loader_kwargs
from pipekit.data.getters import check_split_folders, using_attr
from pipekit.data.splitters import VALID_PCT, VALID_PCT_OR_NONE
from pipekit.data.items import one_type_column, path_frame, read_csv_table, table_column, to_items
from pipekit.vision.blocks import IMAGE_CLASSES, ImageBlock, MaskBlock

__all__ = ["ImageDataLoaders", "SegmentationDataLoaders"]

_FUNC = Is(callable, "a function")


def _files(path: str | os.PathLike, fnames: Sequence[str | os.PathLike]) -> list[Path]:
    """``fnames`` as paths: absolute ones and those already under ``path`` as given, other relative ones
    under ``path`` (so ``fnames`` may be ``get_image_files(path)`` or names inside ``path``)."""
    if isinstance(fnames, (str, os.PathLike)):
        raise ParameterError(f"fnames must be a list of files, got the single {type(fnames).__name__} {str(fnames)!r}; "
                             "e.g. fnames=get_image_files(path)")
    base = Path(path)
    out = []
    for f in fnames:
        p = Path(f)
        under = p.is_absolute() or base == Path(".") or p.parts[:len(base.parts)] == base.parts
        out.append(p if under else base / p)
    if not out:
        raise ParameterError("fnames is empty: no image files to load; check the folder and get_image_files")
    return out


def _name_label(label_func: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A getter giving ``label_func`` the file name (a str) of each item, as the book's ``from_name_func`` does:
    ``using_attr(label_func, 'name')``, as fastai makes it, which an export keeps when ``label_func`` is registered
    (``pipekit.register(is_cat, kind='getter')``).

    >>> def is_cat(name): return name[0].isupper()
    >>> _name_label(is_cat)("images/Abyssinian_3.jpg")
    True
    """
    return using_attr(label_func, "name")


class ImageDataLoaders:
    """The book's image classification data in one call; every factory returns pipekit ``DataLoaders``.

    Common parameters: ``valid_pct`` and ``seed`` (a random split; the seed also fixes the batches),
    ``item_tfms`` / ``batch_tfms`` (one transform or a list), ``img_cls`` ("RGB" or "L" for grey), and
    ``bs``, ``val_bs``, ``shuffle``, ``device``, ``num_workers`` for ``DataBlock.dataloaders``.

    >>> import pipekit.datasets as D
    >>> from pipekit.vision import ImageDataLoaders
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=16, seed=0)
    >>> x, y = dls.one_batch()
    >>> dls.vocab, tuple(x.shape), y[:4].tolist()  # labels as indices into the vocab; seed=0 fixes the batch
    (['3', '7'], (16, 1, 28, 28), [1, 0, 0, 0])
    """

    @staticmethod
    def from_folder(source: str | os.PathLike | None = None, /, train: str = "train", valid: str = "valid",
                    valid_pct: float | None = None, seed: int | None = None, vocab: Sequence[str] | None = None,
                    item_tfms: Any = None, batch_tfms: Any = None, img_cls: str = "RGB",
                    path: str | os.PathLike | None = None, **kwargs: Any) -> DataLoaders:
        """ImageNet-style folders: ``source/train/<label>/*.jpg`` and ``source/valid/<label>/*.jpg`` (or, with
        ``valid_pct``, every image under ``source`` split at random). The label is the parent folder's name.

        ``path``: where a learner on these loaders saves (``dls.path``, then ``learn.path``); without it the
        working directory ``'.'``, so a relative ``learn.export()`` does not write into the data's folder.
        ``from_folder(path, path=path)`` keeps the models beside the images, as fastai does;
        ``from_folder(path=folder)`` alone reads the images in ``folder``.

        The DataBlock: ``blocks=(ImageBlock(img_cls), CategoryBlock(vocab))``, ``get_items=get_image_files``
        (in ``train`` and ``valid`` only, without ``valid_pct``), ``get_y=parent_label``,
        ``splitter=GrandparentSplitter(train, valid)`` or ``RandomSplitter(valid_pct, seed)``.

        >>> import pipekit.datasets as D
        >>> from pipekit.vision import ImageDataLoaders, Resize
        >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=64)
        >>> dls.vocab, len(dls.train_ds), len(dls.valid_ds)
        (['3', '7'], 709, 699)
        """
        check_loader_kwargs("ImageDataLoaders.from_folder", kwargs, ImageDataLoaders.from_folder)
        check("ImageDataLoaders.from_folder", valid_pct=(valid_pct, VALID_PCT_OR_NONE),
              img_cls=(img_cls, Options(*IMAGE_CLASSES)))
        if source is None:  # from_folder(path=...): the folder of the images, dls.path left at its default
            if path is None:
                raise ParameterError("ImageDataLoaders.from_folder: give the folder of the images, "
                                     "ImageDataLoaders.from_folder(path)")
            source, path = path, None
        if valid_pct is None:
            check_split_folders(source, train, valid, "ImageDataLoaders.from_folder")
            splitter: Any = GrandparentSplitter(train_name=train, valid_name=valid)
            get_items: Callable[..., Any] = partial(get_image_files, folders=[train, valid])
        else:  # valid_pct=0, every image training: those of the train and valid folders where there are, as fastai's
            splitter = RandomSplitter(valid_pct, seed=seed)
            split_folders = not valid_pct and any((Path(source) / n).is_dir() for n in (train, valid))
            get_items = partial(get_image_files, folders=[train, valid]) if split_folders else get_image_files
        dblock = DataBlock(blocks=(ImageBlock(cls=img_cls), CategoryBlock(vocab=vocab)), get_items=get_items,
                           get_y=parent_label, splitter=splitter, item_tfms=item_tfms, batch_tfms=batch_tfms)
        return dblock.dataloaders(source, seed=seed, path=path, **kwargs)

    @staticmethod
    def from_path_func(path: str | os.PathLike, fnames: Sequence[str | os.PathLike], label_func: Callable[[Path], Any],
                       valid_pct: float = 0.2, seed: int | None = None, item_tfms: Any = None, batch_tfms: Any = None,
                       img_cls: str = "RGB", **kwargs: Any) -> DataLoaders:
        """``fnames`` labelled by ``label_func(path_of_the_file)`` (a ``pathlib.Path``), split at random.

        The DataBlock: ``blocks=(ImageBlock(img_cls), CategoryBlock)``, ``get_y=label_func``,
        ``splitter=RandomSplitter(valid_pct, seed)``, over the files.
        """
        check_loader_kwargs("ImageDataLoaders.from_path_func", kwargs, ImageDataLoaders.from_path_func)
        check("ImageDataLoaders.from_path_func", valid_pct=(valid_pct, VALID_PCT), label_func=(label_func, _FUNC),
              img_cls=(img_cls, Options(*IMAGE_CLASSES)))
        dblock = DataBlock(blocks=(ImageBlock(cls=img_cls), CategoryBlock), get_y=label_func,
                           splitter=RandomSplitter(valid_pct, seed=seed), item_tfms=item_tfms, batch_tfms=batch_tfms)
        return dblock.dataloaders(_files(path, fnames), seed=seed, **kwargs)

    @staticmethod
    def from_name_func(path: str | os.PathLike, fnames: Sequence[str | os.PathLike], label_func: Callable[[str], Any],
                       valid_pct: float = 0.2, seed: int | None = None, item_tfms: Any = None, batch_tfms: Any = None,
                       img_cls: str = "RGB", **kwargs: Any) -> DataLoaders:
        """``fnames`` labelled by ``label_func(file_name)`` (the name as a str, e.g. ``'cat.12.jpg'``), split
        at random: the book's chapter 1 (``label_func=is_cat``).

        The DataBlock of :meth:`from_path_func` with ``get_y`` giving ``label_func`` the file's name.

        >>> import pipekit.datasets as D
        >>> from pipekit.data import get_image_files
        >>> from pipekit.vision import ImageDataLoaders, Resize
        >>> def is_cat(x): return x[0] == "c"
        >>> path = D.path("dogscats") / "valid"
        >>> dls = ImageDataLoaders.from_name_func(path, get_image_files(path)[::10], valid_pct=0.2, seed=42,
        ...                                       label_func=is_cat, item_tfms=Resize(64))
        >>> dls.vocab
        [False, True]
        """
        check_loader_kwargs("ImageDataLoaders.from_name_func", kwargs, ImageDataLoaders.from_name_func)
        check("ImageDataLoaders.from_name_func", label_func=(label_func, _FUNC))
        return ImageDataLoaders.from_path_func(path, fnames, _name_label(label_func), valid_pct=valid_pct, seed=seed,
                                               item_tfms=item_tfms, batch_tfms=batch_tfms, img_cls=img_cls, **kwargs)

    @staticmethod
    def from_path_re(path: str | os.PathLike, fnames: Sequence[str | os.PathLike], pat: str, valid_pct: float = 0.2,
                     seed: int | None = None, item_tfms: Any = None, batch_tfms: Any = None, img_cls: str = "RGB",
                     **kwargs: Any) -> DataLoaders:
        """``fnames`` labelled by the first group of the regular expression ``pat`` searched in the full path
        (``get_y=RegexLabeller(pat)``), split at random."""
        check_loader_kwargs("ImageDataLoaders.from_path_re", kwargs, ImageDataLoaders.from_path_re)
        return ImageDataLoaders.from_path_func(path, fnames, RegexLabeller(pat), valid_pct=valid_pct, seed=seed,
                                               item_tfms=item_tfms, batch_tfms=batch_tfms, img_cls=img_cls, **kwargs)

    #: labels from a regular expression over each file's path (the name :meth:`from_path_re` also has)
    from_re = from_path_re

    @staticmethod
    def from_name_re(path: str | os.PathLike, fnames: Sequence[str | os.PathLike], pat: str, valid_pct: float = 0.2,
                     seed: int | None = None, item_tfms: Any = None, batch_tfms: Any = None, img_cls: str = "RGB",
                     **kwargs: Any) -> DataLoaders:
        """``fnames`` labelled by the first group of ``pat`` matched in the file name only
        (``get_y=Pipe(FileName(), RegexLabeller(pat))``; the book's pets: ``pat=r'^(.+)_\\d+.jpg$'``)."""
        check_loader_kwargs("ImageDataLoaders.from_name_re", kwargs, ImageDataLoaders.from_name_re)
        return ImageDataLoaders.from_path_func(path, fnames, Pipe(FileName(), RegexLabeller(pat)), valid_pct=valid_pct,
                                               seed=seed, item_tfms=item_tfms, batch_tfms=batch_tfms, img_cls=img_cls,
                                               **kwargs)

    @staticmethod
    def from_df(df: Any, path: str | os.PathLike = ".", valid_pct: float = 0.2, seed: int | None = None,
                fn_col: int | str = 0, folder: str | None = None, suff: str = "", label_col: int | str = 1,
                label_delim: str | None = None, y_block: Any = None, valid_col: int | str | None = None,
                item_tfms: Any = None, batch_tfms: Any = None, img_cls: str = "RGB", **kwargs: Any) -> DataLoaders:
        """A table (Polars or pandas) with a file-name column ``fn_col`` (files at
        ``path/folder/<name><suff>``, or the names themselves when they are all full paths) and a label column ``label_col``; several labels per image with
        ``label_delim`` (then ``y_block`` defaults to ``MultiCategoryBlock``); the rows where ``valid_col``
        is true are the validation set, else a random ``valid_pct``. A Hugging Face ``datasets.Dataset`` is a table
        too: its ``Image`` column (or a column of encoded bytes) as ``fn_col`` holds the images themselves, read as
        they are (no ``path``, ``folder`` or ``suff``).

        The DataBlock: ``blocks=(ImageBlock(img_cls), y_block)``, ``get_x=ColReader(fn_col, pref=path/folder,
        suffix=suff)``, ``get_y=ColReader(label_col, label_delim=label_delim)``, ``splitter=ColSplitter(valid_col)``
        or ``RandomSplitter(valid_pct, seed)``.

        >>> import pandas as pd
        >>> import pipekit.datasets as D
        >>> from pipekit.vision import ImageDataLoaders, Resize
        >>> path = D.path("mnist_tiny")
        >>> df = pd.read_csv(path / "labels.csv")      # name (train/3/7463.png, ...), label (3 or 7)
        >>> dls = ImageDataLoaders.from_df(df, path, item_tfms=Resize(28), bs=16, seed=0)
        >>> dls.vocab, len(dls.train_ds), len(dls.valid_ds), tuple(dls.one_batch()[0].shape)
        ([3, 7], 1127, 281, (16, 3, 28, 28))
        """
        check_loader_kwargs("ImageDataLoaders.from_df", kwargs, ImageDataLoaders.from_df)
        check("ImageDataLoaders.from_df", valid_pct=(valid_pct, VALID_PCT), img_cls=(img_cls, Options(*IMAGE_CLASSES)))
        frame = to_items(df)
        fn, label = table_column(frame, fn_col, "fn_col"), table_column(frame, label_col, "label_col")
        pref: Path | str = Path(path) / folder if folder is not None else Path(path)
        if isinstance(frame[fn].dtype, pl.Struct) or frame[fn].dtype == pl.Binary:
            # the images themselves, as image blocks read them: a datasets Image column ({bytes, path}), bytes
            if folder is not None or suff:
                raise ParameterError(f"ImageDataLoaders.from_df: fn_col {fn!r} holds the images themselves "
                                     f"({frame[fn].dtype}, e.g. a Hugging Face datasets Image column), not file "
                                     f"names; leave out folder={folder!r} and suff={suff!r}, which name files")
            pref = ""
        else:
            absolute = frame[fn].cast(pl.String).map_elements(os.path.isabs, return_dtype=pl.Boolean).fill_null(False)
            if absolute.all():  # full paths already (a table made from get_image_files): used as they are
                pref = ""
            elif absolute.any():
                i = int(absolute.arg_true()[0])
                raise DataError(f"ImageDataLoaders.from_df: fn_col {fn!r} mixes full paths (row {i}: "
                                f"{frame[fn][i]!r}) with names relative to path/folder; make them all one or the other")
        if y_block is None:
            y_block = MultiCategoryBlock if label_delim is not None else CategoryBlock
        splitter = (ColSplitter(table_column(frame, valid_col, "valid_col")) if valid_col is not None
                    else RandomSplitter(valid_pct, seed=seed))
        dblock = DataBlock(blocks=(ImageBlock(cls=img_cls), y_block), get_x=ColReader(fn, pref=pref, suffix=suff),
                           get_y=ColReader(label, label_delim=label_delim), splitter=splitter, item_tfms=item_tfms,
                           batch_tfms=batch_tfms)
        return dblock.dataloaders(frame, seed=seed, **kwargs)

    @staticmethod
    def from_csv(path: str | os.PathLike, csv_fname: str | os.PathLike = "labels.csv", header: str | None = "infer",
                 delimiter: str | None = None, **kwargs: Any) -> DataLoaders:
        """:meth:`from_df` on the CSV file ``path/csv_fname`` (``header=None`` when it has no header line:
        columns are then used by position, ``fn_col=0``, ``label_col=1``)."""
        check_loader_kwargs("ImageDataLoaders.from_csv", kwargs, ImageDataLoaders.from_csv, ImageDataLoaders.from_df,
                            but=("df",))
        return ImageDataLoaders.from_df(read_csv_table(path, csv_fname, header, delimiter), path=path, **kwargs)

    @staticmethod
    def from_lists(path: str | os.PathLike, fnames: Sequence[str | os.PathLike], labels: Sequence[Any],
                   valid_pct: float = 0.2, seed: int | None = None, y_block: Any = None, item_tfms: Any = None,
                   batch_tfms: Any = None, img_cls: str = "RGB", **kwargs: Any) -> DataLoaders:
        """Files and their labels as two lists of the same length (a list of labels per file makes a
        multi-label set), split at random.

        The DataBlock: ``blocks=(ImageBlock(img_cls), y_block or CategoryBlock)``, over a table of the files
        (``get_x``) and ``labels`` (``get_y=ColReader('label')``), ``splitter=RandomSplitter(valid_pct, seed)``.
        """
        check_loader_kwargs("ImageDataLoaders.from_lists", kwargs, ImageDataLoaders.from_lists)
        check("ImageDataLoaders.from_lists", valid_pct=(valid_pct, VALID_PCT), img_cls=(img_cls, Options(*IMAGE_CLASSES)))
        files, labels = _files(path, fnames), list(labels)
        if len(files) != len(labels):
            raise ParameterError(f"from_lists: {len(files)} files but {len(labels)} labels; give one label per file")
        if y_block is None:
            y_block = MultiCategoryBlock if labels and isinstance(labels[0], (list, tuple)) else CategoryBlock
        items = pl.DataFrame([path_frame(files).to_series(),  # a name UTF-8 cannot hold: named, with the fix
                              one_type_column("label", labels, "from_lists: the labels hold")])
        dblock = DataBlock(blocks=(ImageBlock(cls=img_cls), y_block), get_x=ColReader("path"),
                           get_y=ColReader("label"), splitter=RandomSplitter(valid_pct, seed=seed),
                           item_tfms=item_tfms, batch_tfms=batch_tfms)
        return dblock.dataloaders(items, seed=seed, **kwargs)


class SegmentationDataLoaders:
    """The book's segmentation data in one call (returns pipekit ``DataLoaders``).

    >>> import numpy as np
    >>> import pipekit.datasets as D
    >>> from pipekit.data import get_image_files
    >>> from pipekit.vision import Resize, SegmentationDataLoaders
    >>> path = D.path("camvid_tiny")
    >>> codes = np.loadtxt(path / "codes.txt", dtype=str)  # the name of each mask value
    >>> dls = SegmentationDataLoaders.from_label_func(
    ...     path, get_image_files(path / "images")[:8], lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
    ...     codes=codes, item_tfms=Resize(32), bs=4, seed=0)
    >>> x, y = dls.one_batch()
    >>> len(dls.vocab), dls.vocab[:2], tuple(x.shape), tuple(y.shape), y.dtype
    (32, ['Animal', 'Archway'], (4, 3, 32, 32), (4, 32, 32), torch.int64)
    """

    @staticmethod
    def from_label_func(path: str | os.PathLike, fnames: Sequence[str | os.PathLike], label_func: Callable[[Path], Any],
                        valid_pct: float = 0.2, seed: int | None = None, codes: Sequence[str] | None = None,
                        item_tfms: Any = None, batch_tfms: Any = None, img_cls: str = "RGB",
                        **kwargs: Any) -> DataLoaders:
        """Images ``fnames`` and their masks, ``label_func(image_path)`` giving each mask's file (a path);
        ``codes`` names the classes (one per mask value). The book's CamVid:
        ``label_func=lambda o: path/'labels'/f'{o.stem}_P{o.suffix}'``.

        The DataBlock: ``blocks=(ImageBlock(img_cls), MaskBlock(codes))``, ``get_y=label_func``,
        ``splitter=RandomSplitter(valid_pct, seed)``; item transforms resize images and masks alike.
        """
        check_loader_kwargs("SegmentationDataLoaders.from_label_func", kwargs, SegmentationDataLoaders.from_label_func)
        check("SegmentationDataLoaders.from_label_func", valid_pct=(valid_pct, VALID_PCT), label_func=(label_func, _FUNC),
              img_cls=(img_cls, Options(*IMAGE_CLASSES)))
        dblock = DataBlock(blocks=(ImageBlock(cls=img_cls), MaskBlock(codes=codes)), get_y=label_func,
                           splitter=RandomSplitter(valid_pct, seed=seed), item_tfms=item_tfms, batch_tfms=batch_tfms)
        return dblock.dataloaders(_files(path, fnames), seed=seed, **kwargs)
