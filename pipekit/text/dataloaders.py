"""The book's one-line text data: ``TextDataLoaders`` (classifiers and language models).

Each factory builds a :class:`~pipekit.data.DataBlock` with a :class:`~pipekit.text.TextBlock` and calls its
``dataloaders`` (no second pipeline). Keyword arguments not named here (``bs``, ``val_bs``, ``shuffle``,
``device``, ``num_workers``) go to ``DataBlock.dataloaders``; ``seed`` fixes the split and the batches.
``tok``, ``seq_len``, ``min_freq``, ``max_vocab``, ``max_len`` (keep each classifier text's last ``max_len``
tokens; refused with ``is_lm=True``) and ``cache_dir`` go to the ``TextBlock``.

>>> import pipekit.datasets as D
>>> from pipekit.text import TextDataLoaders
>>> dls = TextDataLoaders.from_csv(D.path("imdb_sample"), "texts.csv", text_col="text", label_col="label",
...                                valid_col="is_valid", bs=32, seed=0)
>>> dls.vocab[0][:4], dls.vocab[1]
(['xxunk', 'xxpad', 'xxbos', 'xxeos'], ['negative', 'positive'])

A classifier's ``dls.vocab`` is fastai's ``[text_vocab, classes]``: the tokens (``dls.vocab[0]``, what a classifier
reusing the language model's vocab is given) then the classes (``dls.vocab[1]``, also ``dls.y_block.vocab``); a
language model's is its tokens alone.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import polars as pl

from pipekit.core.errors import DataError, ParameterError
from pipekit.core.validate import check, is_pandas
from pipekit.data import (CategoryBlock, ColReader, ColSplitter, DataBlock, DataLoaders, GrandparentSplitter,
                          MultiCategoryBlock, RandomSplitter, get_text_files, parent_label)
from pipekit.data.datablock import check_loader_kwargs
from pipekit.data.getters import check_split_folders
from pipekit.data.splitters import VALID_PCT, VALID_PCT_OR_NONE
from pipekit.data.items import read_csv_table, table_column, to_items
from pipekit.text.blocks import TextBlock, check_forwards
from pipekit.text.tokenize import Tokenizer, check_table_args

__all__ = ["TextDataLoaders"]



def _text_block(text_vocab: Sequence[str] | None, is_lm: bool, seq_len: int, tok: Tokenizer | None, min_freq: int,
                max_vocab: int, max_len: int | None, cache_dir: Any, read_files: bool, encoding: str = "utf-8",
                errors: str = "strict") -> TextBlock:
    return TextBlock(tok=tok, is_lm=is_lm, seq_len=seq_len, vocab=text_vocab, min_freq=min_freq, max_vocab=max_vocab,
                     max_len=max_len, read_files=read_files, encoding=encoding, errors=errors, cache_dir=cache_dir)


def _check_not_continuous(frame: pl.DataFrame, label: str) -> None:
    """A float label column with fractions is a regression target, which the default CategoryBlock would turn
    into one class per value: say so before building."""
    col = frame[label]
    if not col.dtype.is_float():
        return
    values = col.drop_nulls().drop_nans()
    fractional = values.filter(values != values.round(0))
    if len(fractional):
        raise DataError(f"TextDataLoaders.from_df: label_col={label!r} holds numbers with fractions (e.g. "
                        f"{fractional[0]!r}, {len(fractional)} of {len(values)}): the target looks continuous; pass "
                        f"y_block=RegressionBlock for a regression (from pipekit.data import RegressionBlock), or "
                        f"y_block=CategoryBlock to treat each value as a class")


def _tok_or_tok_tfm(who: str, tok: Tokenizer | None, tok_tfm: Tokenizer | None) -> Tokenizer | None:
    """The tokenizer given as pipekit's ``tok`` or as fastai's ``tok_tfm``; both at once is refused."""
    if tok is not None and tok_tfm is not None:
        raise ParameterError(f"{who}: tok and tok_tfm are the same argument (tok_tfm is fastai's name of it); give one")
    return tok if tok_tfm is None else tok_tfm


class TextDataLoaders:
    """The book's text data in one call; every factory returns pipekit ``DataLoaders``.

    ``is_lm=True`` makes language-model loaders (no labels; batches of ``seq_len`` tokens); ``text_vocab``
    reuses a vocabulary (the language model's, ``dls_lm.vocab``) for the classifier; ``vocab`` fixes the
    classes.

    >>> import polars as pl
    >>> import pipekit.datasets as D
    >>> from pipekit.text import TextDataLoaders
    >>> df = pl.read_csv(D.path("imdb_sample") / "texts.csv")[::25]
    >>> dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=8, seed=0,
    ...                               cache_dir=False)
    >>> dls.vocab[0][:4], dls.vocab[1]
    (['xxunk', 'xxpad', 'xxbos', 'xxeos'], ['negative', 'positive'])
    >>> x, y = dls.one_batch()
    >>> x.shape[0], tuple(y.shape)
    (8, (8,))
    >>> dls_lm = TextDataLoaders.from_df(df, text_col="text", is_lm=True, bs=4, seq_len=16, seed=0, cache_dir=False)
    >>> [tuple(t.shape) for t in dls_lm.one_batch()]
    [(4, 16), (4, 16)]
    """

    @staticmethod
    def from_folder(source: str | os.PathLike | None = None, /, train: str = "train", valid: str = "valid",
                    valid_pct: float | None = None, seed: int | None = None, vocab: Sequence[str] | None = None,
                    text_vocab: Sequence[str] | None = None, is_lm: bool = False, tok_tfm: Tokenizer | None = None,
                    seq_len: int = 72, splitter: Any = None, backwards: bool = False,
                    tok: Tokenizer | None = None, min_freq: int = 3, max_vocab: int = 60000, max_len: int | None = None,
                    cache_dir: Any = None, encoding: str = "utf-8", errors: str = "strict",
                    path: str | os.PathLike | None = None, **kwargs: Any) -> DataLoaders:
        """Text files in ImageNet-style folders: ``source/train/<label>/*.txt`` and ``source/valid/<label>/*.txt``
        (or, with ``valid_pct``, every text file under ``source`` split at random); the label is the folder.
        The files are read as ``encoding``; ``errors="replace"`` (or ``"ignore"``) reads bytes that are not
        valid in it instead of stopping at the first file that has them.

        ``path``: the folder a learner on these loaders saves to (``dls.path``, then ``learn.path``: where
        ``learn.save``, ``save_encoder`` and ``export`` write), as the other factories take it; without it
        ``dls.path`` is the working directory ``'.'``. ``from_folder(path, valid='test', path=path)`` keeps the
        models beside the texts, as a language model built with ``.dataloaders(path, path=path)`` does, so
        ``learn.load_encoder('finetuned')`` finds its encoder. ``from_folder(path=folder)`` alone (no folder
        before it) reads the texts in ``folder`` and leaves ``dls.path`` at ``'.'``.

        The DataBlock: ``blocks=(TextBlock.from_folder(source, ...), CategoryBlock(vocab))`` (only the
        TextBlock with ``is_lm``), ``get_items=get_text_files`` (in ``train`` and ``valid`` without
        ``valid_pct``), ``get_y=parent_label``, ``splitter=GrandparentSplitter(train, valid)`` or
        ``RandomSplitter(valid_pct, seed)``. A model trained on it predicts a raw string as well as a file.

        fastai's arguments, in its order: ``tok_tfm`` is fastai's name of ``tok``; ``splitter`` replaces the
        splitter above, over the same files (those in ``train`` and ``valid``, or with ``valid_pct`` every text
        file), and, where ``source`` has neither folder, over every text file under it
        (``from_folder(path/'train', splitter=RandomSplitter(0.2))``); ``backwards=True`` is refused (pipekit reads
        texts forwards). Any other keyword is refused, naming the close ones.

        >>> import tempfile, polars as pl, pipekit.datasets as D
        >>> from pathlib import Path
        >>> from pipekit.text import TextDataLoaders
        >>> df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
        >>> imdb = Path(tempfile.mkdtemp()) / "imdb"
        >>> for i, (label, text, is_valid) in enumerate(df[::20].iter_rows()):  # 50 reviews, as imdb/train/<label>/...
        ...     folder = imdb / ("valid" if is_valid else "train") / label
        ...     folder.mkdir(parents=True, exist_ok=True)
        ...     _ = (folder / f"{i}.txt").write_text(text, encoding="utf-8")
        >>> dls = TextDataLoaders.from_folder(imdb, bs=8, seed=0, cache_dir=False)
        >>> dls.vocab[1], dls.vocab[0][:3], len(dls.train_ds), len(dls.valid_ds)
        (['negative', 'positive'], ['xxunk', 'xxpad', 'xxbos'], 40, 10)
        """
        who = "TextDataLoaders.from_folder"
        check_loader_kwargs(who, kwargs, TextDataLoaders.from_folder)
        check(who, valid_pct=(valid_pct, VALID_PCT_OR_NONE))
        check_forwards(who, backwards)
        tok = _tok_or_tok_tfm(who, tok, tok_tfm)
        if source is None:  # from_folder(path=...): the folder of the texts, dls.path left at its default
            if path is None:
                raise ParameterError("TextDataLoaders.from_folder: give the folder of the texts, "
                                     "TextDataLoaders.from_folder(path, valid='test')")
            source, path = path, None
        get_items: Callable[..., Any]
        if splitter is not None:  # fastai's: the splitter given, over the files the factory reads
            split_folders = valid_pct is None and any((Path(source) / n).is_dir() for n in (train, valid))
            get_items = partial(get_text_files, folders=[train, valid]) if split_folders else get_text_files
        elif valid_pct is None:
            check_split_folders(source, train, valid, "TextDataLoaders.from_folder")
            splitter = GrandparentSplitter(train_name=train, valid_name=valid)
            get_items = partial(get_text_files, folders=[train, valid])
        else:
            splitter, get_items = RandomSplitter(valid_pct, seed=seed), get_text_files
        text = _text_block(text_vocab, is_lm, seq_len, tok, min_freq, max_vocab, max_len, cache_dir, read_files=True,
                           encoding=encoding, errors=errors)
        blocks: tuple[Any, ...] = (text,) if is_lm else (text, CategoryBlock(vocab=vocab))
        dblock = DataBlock(blocks=blocks, get_items=get_items, get_y=None if is_lm else parent_label, splitter=splitter)
        return dblock.dataloaders(source, seed=seed, path=path, **kwargs)

    @staticmethod
    def from_df(df: Any, path: str | os.PathLike = ".", valid_pct: float = 0.2, seed: int | None = None,
                text_col: int | str | Sequence[int | str] = 0, label_col: int | str = 1,
                label_delim: str | None = None, y_block: Any = None, text_vocab: Sequence[str] | None = None,
                is_lm: bool = False, valid_col: int | str | None = None, tok_tfm: Tokenizer | None = None,
                tok_text_col: str = "text", seq_len: int = 72, backwards: bool = False,
                tok: Tokenizer | None = None, min_freq: int = 3, max_vocab: int = 60000, max_len: int | None = None,
                cache_dir: Any = None, **kwargs: Any) -> DataLoaders:
        """A table (Polars or pandas) with the text in ``text_col`` (several columns are joined with
        ``xxfld`` markers) and the label in ``label_col`` (several labels with ``label_delim``); the rows where
        ``valid_col`` is true are the validation set, else a random ``valid_pct``.

        The DataBlock: ``blocks=(TextBlock.from_df(text_col, ...), y_block)``, ``get_x=ColReader(text_col)``,
        ``get_y=ColReader(label_col, label_delim=label_delim)`` (no target with ``is_lm``),
        ``splitter=ColSplitter(valid_col)`` or ``RandomSplitter(valid_pct, seed)``. ``path``: the folder a
        learner on these loaders saves to (``dls.path``, then ``learn.path``); the texts are in the table.

        fastai's arguments, in its order: ``tok_tfm`` is fastai's name of ``tok``; ``tok_text_col`` is taken at its
        default, ``"text"`` (fastai's column for the tokens, which pipekit keeps out of the table); ``backwards=True``
        is refused (pipekit reads texts forwards). Any other keyword is refused, naming the close ones.

        >>> import polars as pl, pipekit.datasets as D
        >>> from pipekit.text import TextDataLoaders
        >>> df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
        >>> dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=32)
        >>> dls.vocab[1], dls.vocab[0][:3], len(dls.train_ds), len(dls.valid_ds)
        (['negative', 'positive'], ['xxunk', 'xxpad', 'xxbos'], 800, 200)
        """
        who = "TextDataLoaders.from_df"
        check_loader_kwargs(who, kwargs, TextDataLoaders.from_df)
        check(who, valid_pct=(valid_pct, VALID_PCT))
        check_forwards(who, backwards)
        check_table_args(who, None, tok_text_col=tok_text_col)
        tok = _tok_or_tok_tfm(who, tok, tok_tfm)
        frame = to_items(df)
        text_cols = list(text_col) if isinstance(text_col, (list, tuple)) else [cast("int | str", text_col)]
        cols = [table_column(frame, c, "text_col") for c in text_cols]
        if is_pandas(df) and len(cols) == 1 and frame[cols[0]].dtype not in (pl.String, pl.Null):
            c = cols[0]
            raise DataError(f"{who}: text_col={c!r} holds {frame[c].dtype} values, not texts; convert the column to "
                            f"text first, df[{c!r}] = df[{c!r}].astype(str), or pick the text column")
        text = _text_block(text_vocab, is_lm, seq_len, tok, min_freq, max_vocab, max_len, cache_dir, read_files=False)
        splitter = (ColSplitter(table_column(frame, valid_col, "valid_col")) if valid_col is not None
                    else RandomSplitter(valid_pct, seed=seed))
        get_x = ColReader(cols[0] if len(cols) == 1 else cols)
        if is_lm:
            dblock = DataBlock(blocks=(text,), get_x=get_x, splitter=splitter)
        else:
            label = table_column(frame, label_col, "label_col")
            if y_block is None:
                _check_not_continuous(frame, label)
                y_block = MultiCategoryBlock if label_delim is not None else CategoryBlock
            dblock = DataBlock(blocks=(text, y_block), get_x=get_x, splitter=splitter,
                               get_y=ColReader(label, label_delim=label_delim))
        return dblock.dataloaders(frame, seed=seed, path=path, **kwargs)

    @staticmethod
    def from_csv(path: str | os.PathLike, csv_fname: str | os.PathLike = "labels.csv", header: str | None = "infer",
                 delimiter: str | None = None, **kwargs: Any) -> DataLoaders:
        """:meth:`from_df` on the CSV file ``path/csv_fname`` (``header=None`` when it has no header line).

        >>> import pipekit.datasets as D
        >>> from pipekit.text import TextDataLoaders
        >>> dls = TextDataLoaders.from_csv(D.path("imdb_sample"), "texts.csv", text_col="text", label_col="label",
        ...                                valid_col="is_valid", bs=32, seed=0)
        >>> dls.vocab[1], len(dls.vocab[0]) == len(dls.blocks[0].vocab), len(dls.train_ds), len(dls.valid_ds)
        (['negative', 'positive'], True, 800, 200)
        """
        check_loader_kwargs("TextDataLoaders.from_csv", kwargs, TextDataLoaders.from_csv, TextDataLoaders.from_df,
                            but=("df",))
        return TextDataLoaders.from_df(read_csv_table(path, csv_fname, header, delimiter), path=path, **kwargs)
