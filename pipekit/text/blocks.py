"""TextBlock: a text column (or text files) -> token ids, for classifiers and language models.

>>> import polars as pl
>>> from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock
>>> df = pl.DataFrame({"text": ["A great film!", "Dull.", "Great fun", "So dull"] * 4,
...                    "label": ["pos", "neg", "pos", "neg"] * 4, "is_valid": [False] * 12 + [True] * 4})
>>> dls = DataBlock(blocks=(TextBlock.from_df("text", min_freq=1, cache_dir=False), CategoryBlock),
...                 get_x=ColReader("text"), get_y=ColReader("label"),
...                 splitter=ColSplitter("is_valid")).dataloaders(df, bs=4, seed=0)
>>> x, y = dls.one_batch()
>>> x.shape[0], dls.vocab[1], dls.vocab[0][:3], dls.vocab[0] == dls.blocks[0].vocab
(4, ['neg', 'pos'], ['xxunk', 'xxpad', 'xxbos'], True)
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from pipekit.core.component import built_from_held_settings, param_names, to_data
from pipekit.core.errors import DataError, ParameterError, PipekitError
from pipekit.core.validate import BOOL, Interval, Is, Options, check, unknown_names
from pipekit.data.blocks import TransformBlock
from pipekit.data.cache import cache_folder, fingerprint, keyed_by_settings, warn_rebuild
from pipekit.text.hf_tokenizer import HFTokenizer
from pipekit.text.loaders import LMDataLoader, SortedDataLoader
from pipekit.text.numericalize import Numericalize
from pipekit.text.store import TextStore, cache_key, load_cached, save_cached, text_keys
from pipekit.text.tokenize import (FLD, PAD, Tokenizer, as_text_series, check_table_args, read_text_file,
                                   tokenizer_for)


def _refuse_file_names(values: pl.Series) -> None:
    """Refuse new values that look like a text file's name (one line, no space, ending in ``.txt``): a ``str``
    given to a text model is the text itself, never a file it names, so classifying the name's words would be a
    silent mistake. Judged on the values alone, whether or not such files exist."""
    text = values.str.strip_chars()
    named = (text.str.to_lowercase().str.ends_with(".txt") & ~values.str.contains("\n", literal=True)
             & ~text.str.contains(r"\s")).fill_null(False)
    if named.any():
        value = values.filter(named)[0][:200]
        raise DataError(f"{value!r} looks like the name of a text file, but a text model takes a str as the text "
                        f"itself; give the file as a path, Path({value!r}), to classify its text, or the text itself")


_GIVE_FILE = "give an existing text file, or the text itself as a str"


def check_forwards(who: str, backwards: Any) -> None:
    """Refuse fastai's ``backwards=True``: pipekit's text loaders and AWD-LSTM models read texts forwards only."""
    check(who, backwards=(backwards, BOOL))
    if backwards:
        raise ParameterError(f"{who}: backwards=True (a model reading texts from the end) is not supported: pipekit's "
                             "text loaders read texts forwards; leave backwards out")


def _fastai_block_args(who: str, kwargs: dict[str, Any], backwards: Any, rules: Any, n_workers: Any) -> dict[str, Any]:
    """``kwargs`` for :class:`TextBlock` from fastai's ``TextBlock.from_df``/``from_folder`` arguments: ``backwards``
    refused when True, ``rules`` made part of the tokenizer (:func:`~pipekit.text.tokenize.tokenizer_for`),
    ``n_workers`` checked and dropped (:func:`~pipekit.text.tokenize.check_table_args` says why); a keyword
    TextBlock does not take is refused, naming the close ones."""
    check_forwards(who, backwards)
    check_table_args(who, None, n_workers=n_workers)
    own = [p for p in param_names(TextBlock) if p not in ("read_files", "text_cols")]
    unknown = [k for k in kwargs if k not in own]
    if unknown:
        fastai = ["is_lm", "seq_len", "backwards", "min_freq", "max_vocab", "rules", "n_workers"]
        raise ParameterError(f"{who}: unknown argument(s) {unknown}; "
                             f"{unknown_names(unknown, sorted(set(own) | set(fastai)), 'arguments')}")
    if rules is not None:
        kwargs["tok"] = tokenizer_for(kwargs.get("tok"), rules, who)
    return kwargs


def _copy_fitted(tok: Tokenizer) -> Tokenizer:
    """A copy of ``tok`` with what its setup learned (a subword model), or an unfitted copy of an unfitted one: the
    block sets up and encodes with its own copy, so the tokenizer given is never changed. A base tokenizer (the
    book's ``SubwordTokenizer()``) is copied unfitted: the block puts the rules on top with ``Tokenizer(tok)``, which
    trains a model of its own on the words the rules give (a model of raw chunks would not fit them)."""
    out = tok.clone()
    if tok.is_fitted and not tok.is_base_tokenizer:
        out.state_from_data(dict(tok.fitted_state()))
    return out


class TextBlock(TransformBlock):
    """Texts tokenized (:class:`Tokenizer`) and numericalized (:class:`Numericalize`) once, cached on disk.

    ``is_lm=True`` makes a language-model block (batches are (x, y shifted by one) windows of ``seq_len``
    from ``bs`` contiguous streams); otherwise batches are texts padded to the batch's longest (pad first),
    sorted by length so padding stays small. ``vocab`` reuses a vocabulary (e.g. the language model's, as
    the book does: ``TextBlock.from_df('text', vocab=dls_lm.vocab)``; a learner has it as
    ``learn.text_vocab``). ``read_files=True`` means the values are file
    paths to read (``errors`` is the policy for bytes that are not valid ``encoding``). ``max_len`` keeps each
    classifier text's last ``max_len`` tokens (None: all); it is refused with ``is_lm=True``, where texts are one
    stream cut into ``seq_len`` windows.
    ``tok`` is set up on the training texts when it is given unfitted (a subword model trained there); given
    fitted (``tok=dls_lm.blocks[0].tok``, the language model's subword tokenizer) it is used as it is, so the
    classifier's texts split into the pieces the language model learned.
    Token ids are cached where ``pipekit.data.cache.cache_folder(cache_dir, "text")`` says:
    ``$PIPEKIT_CACHE/text`` for None, ``<cache_dir>/text`` for a folder, nowhere for False.

    >>> import polars as pl, pipekit.datasets as D
    >>> from pipekit.data import CategoryBlock, ColReader, DataBlock, RandomSplitter
    >>> df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(50)
    >>> dls_lm = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, cache_dir=False), get_x=ColReader("text"),
    ...                    splitter=RandomSplitter(0.1, seed=42)).dataloaders(df, bs=8, seed=42)
    >>> dls_clas = DataBlock(blocks=(TextBlock.from_df("text", vocab=dls_lm.vocab, cache_dir=False), CategoryBlock),
    ...                      get_x=ColReader("text"), get_y=ColReader("label"),
    ...                      splitter=RandomSplitter(0.2, seed=42)).dataloaders(df, bs=8, seed=42)
    >>> dls_clas.train.blocks[0].vocab == dls_lm.vocab == dls_clas.vocab[0], dls_clas.vocab[1]
    (True, ['negative', 'positive'])
    """

    param_attrs = {"vocab": "vocab_arg", "tok": "tok_arg"}
    local_params = ("cache_dir",)  # where this machine caches token ids
    param_constraints = {"seq_len": Interval(2, None, integer=True),
                         "max_len": Interval(1, None, integer=True, none_ok=True),
                         "errors": Options("strict", "replace", "ignore"),
                         "tok": Is(lambda t: t is None or isinstance(t, Tokenizer), "a pipekit.text.Tokenizer or None"),
                         "cache_dir": Is(lambda d: d is None or isinstance(d, (bool, str, os.PathLike)),
                                         "None, False or a folder")}

    def __init__(self, tok: Tokenizer | None = None, is_lm: bool = False, seq_len: int = 72,
                 vocab: Sequence[str] | None = None, min_freq: int = 3, max_vocab: int = 60000,
                 max_len: int | None = None, read_files: bool = False, encoding: str = "utf-8",
                 errors: str = "strict", cache_dir: str | os.PathLike | bool | None = None,
                 text_cols: str | Sequence[str] | None = None):
        self.tok_arg, self.is_lm, self.seq_len, self.vocab_arg = tok, is_lm, seq_len, vocab
        self.min_freq, self.max_vocab, self.max_len = min_freq, max_vocab, max_len
        self.read_files, self.encoding, self.errors, self.cache_dir = read_files, encoding, errors, cache_dir
        self.text_cols = text_cols if text_cols is None or isinstance(text_cols, str) else list(text_cols)
        self.check_params()
        # a file's block keeps what it was saved with: a language model's max_len there never cut anything
        if is_lm and max_len is not None and not built_from_held_settings(self):
            raise ParameterError(f"TextBlock: max_len={max_len} cuts classifier texts only (each to its last max_len "
                                 "tokens); a language model reads all texts as one stream of seq_len windows, so "
                                 "max_len would do nothing: leave it out with is_lm=True (seq_len sets the window)")
        self.type_transforms()  # validates min_freq, max_vocab and vocab now

    def type_transforms(self) -> list[Any]:
        tok = _copy_fitted(self.tok_arg) if self.tok_arg is not None else Tokenizer()
        if tok.is_base_tokenizer:  # the book's WordTokenizer()/SubwordTokenizer(): the rules go on top, as in fastai
            tok = Tokenizer(tok)
        return [tok,
                Numericalize(min_freq=self.min_freq, max_vocab=self.max_vocab, vocab=self.vocab_arg)]

    def loader_type(self) -> type:
        return LMDataLoader if self.is_lm else SortedDataLoader

    def clone(self) -> TextBlock:
        """A new, unfitted block with the same parameters; a tokenizer given fitted (the language model's subword
        one, ``tok=dls_lm.blocks[0].tok``) stays fitted in the copy, as a given ``vocab`` stays given, so a
        DataBlock building its data from a copy of this block splits texts with that very model."""
        out = cast(TextBlock, super().clone())
        if self.tok_arg is not None and self.tok_arg.is_fitted and not self.tok_arg.is_base_tokenizer:
            out.tok_arg = _copy_fitted(self.tok_arg)
        return out

    @property
    def tok(self) -> Tokenizer:
        """The block's :class:`Tokenizer` (fitted once the data is built): ``dls.blocks[0].tok('some text')`` splits a
        text as the model's were."""
        return cast(Tokenizer, self.tfms_[0] if self.is_fitted else self.type_transforms()[0])

    @property
    def num(self) -> Numericalize:
        """The block's :class:`Numericalize` (its ``vocab`` learned once the data is built): tokens to ids and
        back."""
        return cast(Numericalize, self.tfms_[1] if self.is_fitted else self.type_transforms()[1])

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_df(cls, text_cols: str | Sequence[str] = "text", vocab: Sequence[str] | None = None,
                is_lm: bool = False, seq_len: int = 72, backwards: bool = False, min_freq: int = 3,
                max_vocab: int = 60000, *, rules: Any = None, mark_fields: bool | None = None,
                n_workers: int | None = None, tok_text_col: str = "text", **kwargs: Any) -> TextBlock:
        """A block for text column(s) of a table (``kwargs`` are TextBlock's); with several columns (read
        with ``ColReader([...])``), each text is ``xxfld 1 <first> xxfld 2 <second> ...``.

        fastai's arguments, in its order: ``backwards=True`` is refused (pipekit reads texts forwards); ``rules``
        (None or the book's list: the book's rules; False: none) goes to the tokenizer; ``n_workers`` has no
        effect, as pipekit tokenizes a corpus in one process with no workers to count; ``mark_fields`` and
        ``tok_text_col`` are taken at what pipekit does (xxfld markers only between several columns; tokens kept
        out of the table) and refused otherwise (:func:`~pipekit.text.tokenize.check_table_args`).
        """
        check("TextBlock.from_df", text_cols=(text_cols, Is(lambda c: isinstance(c, str) or bool(c) and all(
            isinstance(n, str) for n in c), "a column name or a list of names")))
        check_table_args("TextBlock.from_df", text_cols, mark_fields=mark_fields, tok_text_col=tok_text_col)
        kwargs = _fastai_block_args("TextBlock.from_df", kwargs, backwards, rules, n_workers)
        return cls(vocab=vocab, is_lm=is_lm, seq_len=seq_len, min_freq=min_freq, max_vocab=max_vocab,
                   text_cols=text_cols, **kwargs)

    def default_getter(self) -> Any:
        """The getter a DataBlock uses for this block when it is given none: the ``text_cols`` it was made for."""
        from pipekit.data.getters import ColReader

        return None if self.text_cols is None else ColReader(self.text_cols)

    @classmethod
    def from_folder(cls, path: str | os.PathLike | None = None, vocab: Sequence[str] | None = None,
                    is_lm: bool = False, seq_len: int = 72, backwards: bool = False, min_freq: int = 3,
                    max_vocab: int = 60000, *, rules: Any = None, n_workers: int | None = None,
                    **kwargs: Any) -> TextBlock:
        """A block whose values are paths of text files (``get_items=get_text_files``; ``kwargs`` are
        TextBlock's, e.g. ``encoding``, ``errors``). fastai's ``backwards``, ``rules`` and ``n_workers`` as
        :meth:`from_df` takes them."""
        kwargs = _fastai_block_args("TextBlock.from_folder", kwargs, backwards, rules, n_workers)
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"TextBlock.from_folder: {path} does not exist")
        return cls(vocab=vocab, is_lm=is_lm, seq_len=seq_len, min_freq=min_freq, max_vocab=max_vocab,
                   read_files=True, **kwargs)

    # ------------------------------------------------------------------ raw values -> texts
    def new_paths(self, raw: pl.Series) -> pl.Series:
        """Files given as new items (``learn.predict(Path("review.txt"))``) are read: their text is classified,
        whether the training texts were files or a column of a table (a ``str`` is the text itself, see
        :meth:`texts`). A missing file is refused by name."""
        paths = raw.cast(pl.String).to_list()
        return pl.Series(raw.name, self._read(paths, [True] * len(paths), missing=_GIVE_FILE), dtype=pl.String)

    def _read(self, values: list[str | None], read: list[bool], missing: str | None = None) -> list[str | None]:
        """``values`` with those flagged in ``read`` replaced by their file's text, read in threads (file reads
        release the GIL); a file that is not there is a :class:`DataError` saying ``missing`` when given."""
        def one(value_read: tuple[str | None, bool]) -> str | None:
            value, flag = value_read
            if not flag:
                return value
            try:
                return read_text_file(value, self.encoding, self.errors)  # type: ignore[arg-type]
            except FileNotFoundError:
                if missing is None:
                    raise
                raise DataError(f"{value}: no such file; {missing}") from None

        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            return list(pool.map(one, zip(values, read)))

    def check_raw(self, raw: pl.Series, role: str) -> None:
        """Refuse nulls; with several text columns, a row is refused only when all of them are null (a null
        field is an empty one, its ``xxfld`` marker kept)."""
        super().check_raw(raw, role)
        if isinstance(raw.dtype, pl.Struct):
            fields = raw.struct.unnest()
            rows = fields.select(pl.all_horizontal(pl.all().is_null())).to_series().arg_true().to_list()
            if rows:
                more = " ..." if len(rows) > 10 else ""
                raise DataError(f"TextBlock ({role}) has {len(rows)} row(s) with no text in any of the columns "
                                f"{fields.columns}, at rows {rows[:10]}{more} (positions in the items, from 0); "
                                f"fill or drop those rows before building the data")

    def texts(self, raw: pl.Series, new: bool = False) -> pl.Series:
        """The raw column as one text per item (files read, several columns joined with ``xxfld``).

        With ``read_files`` the training values are files. A new value (``new``: ``predict``, ``test_dl``) is
        the text itself, as in fastai, whatever the model was trained on: files given as new items
        (``Path`` objects) were read already (:meth:`new_paths`), and a ``str`` is never opened, so a model
        served on users' texts reads no file a text names. A new ``str`` that looks like a text file's name (one
        line, no space, ending in ``.txt``) is refused rather than classified as words.
        """
        if self.read_files and not new:
            if not (raw.dtype == pl.String or raw.dtype == pl.Object or raw.dtype == pl.Null):
                raise DataError(f"TextBlock takes texts or paths of text files, got {raw.dtype} values (e.g. "
                                f"{raw[0]!r}); give a str")
            values = raw.cast(pl.String).to_list()
            return pl.Series("text", self._read(values, [True] * len(values)), dtype=pl.String)
        if new and raw.dtype == pl.String:
            _refuse_file_names(raw)
        if new and not (raw.dtype == pl.String or raw.dtype == pl.Null or isinstance(raw.dtype, pl.Struct)):
            bad = next((i for i, v in enumerate(raw.to_list()) if not isinstance(v, str)), 0)
            raise DataError(f"a text model predicts on texts: item {bad} is {raw[bad]!r} ({raw.dtype}); give a str")
        if isinstance(raw.dtype, pl.Struct):
            fields = raw.struct.unnest()
            parts = [pl.lit(f"{FLD} {i + 1} ") + pl.col(name).cast(pl.String).fill_null("")
                     for i, name in enumerate(fields.columns)]
            return fields.select(pl.concat_str(parts, separator=" ").alias("text")).to_series()
        return as_text_series(raw, "TextBlock values")

    # ------------------------------------------------------------------ building
    @staticmethod
    def _settings(tok: Tokenizer, fitted: bool = False) -> dict[str, Any]:
        # the entry holds tokens, not ids: the tokenizer's settings alone shape it. The vocabulary's settings
        # (min_freq, max_vocab, a given vocab) are applied at each build, so a language model and the classifier
        # built on its vocab (chapter 10) read one entry; the training rows are in the key only when the
        # tokenizer learns from them. The class is in the key too (a Tokenizer and an HFTokenizer of equal settings).
        # A tokenizer given fitted adds what it learned (its subword model), as the training rows stand for a model
        # trained at setup: two models of the same settings never share an entry
        out = {"class": f"{type(tok).__module__}.{type(tok).__qualname__}", "tok": tok.cache_settings()}
        if fitted:
            out["fitted"] = fingerprint(json.dumps(to_data(tok.fitted_state()), sort_keys=True))
        return out

    @staticmethod
    def _cached(tok: Tokenizer) -> bool:
        """Whether this tokenizer's tokens are cached: pipekit's own tokenizers, whose settings say all their tokens
        depend on. A tokenizer class of the user's (a subclass changing ``encode_texts``) can change between two
        runs under the same name and settings, so its tokens are made afresh at each build."""
        return keyed_by_settings(tok)

    @staticmethod
    def _tokens_depend_on_split(tok: Tokenizer) -> bool:
        """Whether ``tok.setup`` learns from the training texts (a subword model trained there), so that the tokens
        of a text depend on the split; the word tokenizer and a trained Hugging Face tokenizer learn nothing."""
        learns_nothing = ((type(tok).setup is Tokenizer.setup and getattr(tok, "mode", None) == "word")
                          or type(tok).setup is HFTokenizer.setup)
        return not learns_nothing

    def setup(self, raw: pl.Series, train_idx: np.ndarray, item_tfms: Sequence[Any] = (), trace: Any = None) -> TextStore:
        """Tokenize all texts once, learn the vocab on ``train_idx``, store ids as list<int32>.

        The tokens are cached, keyed by the texts and the settings (and by the training rows only for a tokenizer
        that learns from them; by its model for one given fitted, which is not set up again), so another split of
        the same texts, a random one with no seed included, reads them back: ``from_cache_`` says whether it did.
        The vocabulary is counted on ``train_idx`` at each build, from the tokens."""
        self.fit_tfms()
        tok, num = self.tok, self.num
        # a tokenizer given fitted keeps its model: nothing is learned from these texts, and the entry is keyed by
        # that model, so tokens another model made are never read back for it
        given_fitted = tok.is_fitted
        self.batch_tfms_ = []
        texts = self.texts(raw)
        train_idx = np.asarray(train_idx, dtype=np.int64)
        root = cache_folder(self.cache_dir, "text") if self._cached(tok) else None
        settings = self._settings(tok, fitted=given_fitted)
        split = train_idx if not given_fitted and self._tokens_depend_on_split(tok) else None
        folder = root / cache_key(texts, settings, split) if root is not None else None
        hit = load_cached(folder, len(texts)) if folder is not None else None
        if hit is not None and not given_fitted:  # the model trained at setup, restored with its tokens
            tokens, meta = hit
            try:
                tok.state_from_data(meta["tok_state"])
            except PipekitError as e:  # a state this tokenizer cannot take: the entry is rebuilt, as a damaged one
                warn_rebuild(folder / "meta.json", f"its tokenizer state cannot be read ({e})")  # type: ignore[operator]
                hit = None
        if hit is not None:
            tokens = hit[0]
            self.from_cache_ = True
        else:
            if not given_fitted:
                tok.setup(texts.gather(train_idx))
            tokens = tok.encode(texts)
            if trace is not None:
                trace(repr(tok), f"{len(tokens.ids)} tokens, {len(tokens.vocab)} distinct")
            if folder is not None:
                # the texts' keys let this entry supersede the one of the texts before an edit (see save_cached)
                save_cached(folder, tokens, {"tok_state": tok.fitted_state(), "settings": settings,
                                             "text_keys": text_keys(texts, split)})
            self.from_cache_ = False
        num.setup(tokens, train_idx)
        ids = num.encode(tokens)
        if trace is not None:
            trace(repr(num), f"vocab of {len(num.vocab_)}")
        return TextStore(ids, pad_idx=self.pad_idx, max_len=self.max_len)

    def encode_new(self, raw: pl.Series) -> TextStore:
        """Encode new texts with the fitted tokenizer and vocab (unknown words -> xxunk)."""
        self.check_is_fitted("setup (build the data)")
        tokens = self.tok.encode(self.texts(raw, new=True))
        return TextStore(self.num.encode(tokens), pad_idx=self.pad_idx, max_len=self.max_len)

    def encode_text(self, text: str) -> np.ndarray:
        """Ids of one text (int64)."""
        return self.num.encode_flat(self.tok.encode([text])).astype(np.int64)

    # ------------------------------------------------------------------ vocab, decoding, showing
    @property
    def pad_idx(self) -> int:
        """The id of the padding token ``xxpad`` in the vocabulary (1, as in fastai, before one is learned)."""
        v = self.vocab
        return v.index(PAD) if v is not None and PAD in v else 1

    def decode(self, value: Any, split_idx: int | None = 1) -> str:
        """Ids (padding dropped) -> readable text, whatever the item's split."""
        return self.tok.decode([t for t in self.num.decode(value) if t != PAD])

    #: in a notebook, show_batch lists texts in a table rather than drawing them
    shows_text = True

    def show(self, ax: Any, value: Any, title: str | None = None) -> None:
        """Write a decoded text on the matplotlib axis ``ax`` (its first 600 characters, wrapped to the axis' width),
        with ``title`` above it (:func:`~pipekit.data.plotting.draw_text`)."""
        from pipekit.data.plotting import draw_text

        draw_text(ax, value, title)

