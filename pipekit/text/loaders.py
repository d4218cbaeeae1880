"""Loaders for text: language-model streams and length-sorted, padded classifier batches.

Both are :class:`~pipekit.data.DataLoader` subclasses that a :class:`~pipekit.text.TextBlock` installs
as its ``dl_type``; they only change which rows make a batch (``batch_plan``) and how a batch is cut
(``create_batch``), so seeding, prefetching and device transfer are the base loader's.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from pipekit.core.errors import DataError, ParameterError
from pipekit.core.validate import Interval, check, check_positive_int
from pipekit.data.dataloaders import ItemsDataLoader, TfmdDatasets, TfmdLists
from pipekit.data.loader import ArrayDataset, DataLoader, ItemsDataset
from pipekit.text.store import TextStore


def _text_store(dataset: Any) -> TextStore:
    for s in dataset.stores if isinstance(dataset, ArrayDataset) else ():
        if isinstance(s, TextStore):
            return s
    raise ParameterError(f"this loader needs a dataset with a TextStore (built by a TextBlock), got {dataset!r}")


class SortedDataLoader(DataLoader):
    """Classifier batches of texts with similar lengths, padded (pad first) to the batch's longest.

    Training: the shuffled items are cut into chunks of ``bs * chunk_mult``, sorted by length inside each
    chunk, batched, and the batches shuffled (the one holding the longest text first, so running out of
    memory shows at once). With ``drop_last``, the ``n % bs`` items left out of an epoch are the last ones of its
    shuffled order, taken out before the sorting: another random few each epoch, so every text is trained on
    (fastai cuts the sorted order, which leaves out the shortest texts of the last chunk every epoch).
    Validation: sorted by length, longest first, none left out. Same seed and epoch -> same batches.

    >>> import polars as pl
    >>> import pipekit.datasets as D
    >>> from pipekit.text import SortedDataLoader, TextDataLoaders
    >>> df = pl.read_csv(D.path("imdb_sample") / "texts.csv")[::25]
    >>> dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", bs=8, seed=0, cache_dir=False)
    >>> dl = dls.train
    >>> isinstance(dl, SortedDataLoader)
    True
    >>> lens, plan = dl.lengths, dl.batch_plan(0)
    >>> int(lens[plan[0]].max()) == int(lens.max())          # the batch holding the longest text comes first
    True
    >>> round(dl.padding_fraction(), 2)                       # the share of padding tokens the sorting leaves
    0.25
    """

    def __init__(self, dataset: Any, bs: int = 64, chunk_mult: int = 50, **kwargs: Any):
        """``kwargs`` are the :class:`~pipekit.data.DataLoader`'s (``shuffle``, ``seed``, ``device``, ...)."""
        super().__init__(dataset, bs=bs, **kwargs)
        check("SortedDataLoader", chunk_mult=(chunk_mult, Interval(1, None, integer=True)))
        self.chunk_mult = chunk_mult

    @property
    def lengths(self) -> np.ndarray:
        """Token count of each item of the dataset, in dataset order."""
        return _text_store(self.dataset).lengths[self.dataset.idxs]

    def batch_plan(self, epoch: int) -> list[np.ndarray]:
        lens = self.lengths
        n, bs = self.n, self.bs
        if not self.shuffle:
            order = np.argsort(-lens, kind="stable")
            return [order[i:i + bs] for i in range(0, n, bs)]
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(n)
        if self.drop_last:  # the items left out are drawn with the order, not cut from the sorted end (the shortest)
            perm = perm[:(n // bs) * bs]
        chunk_id = np.arange(len(perm)) // (bs * self.chunk_mult)
        order = perm[np.lexsort((-lens[perm], chunk_id))]
        batches = [order[i:i + bs] for i in range(0, len(order), bs)]
        if len(batches) > 1:
            longest = int(np.argmax([lens[b].max() for b in batches]))
            rest = [b for k, b in enumerate(batches) if k != longest]
            batches = [batches[longest]] + [rest[k] for k in rng.permutation(len(rest))]
        return batches

    def padding_fraction(self, epoch: int = 0) -> float:
        """Share of padding tokens over an epoch's batches (what sorting saves)."""
        lens = self.lengths
        plan = self.batch_plan(epoch)
        real = sum(int(lens[b].sum()) for b in plan)
        padded = sum(int(lens[b].max()) * len(b) for b in plan)
        return 1.0 - real / max(padded, 1)


def _item_lengths(dataset: ItemsDataset) -> np.ndarray:
    """The length of each item of a ``TfmdLists``' or ``Datasets``' subset (an :class:`ItemsDataset`), in dataset
    order: of its first part, a text's token ids, as the transforms encoded it (``after_item`` is not run for it).
    Read from the encoded column at once when it is an Arrow list column (``Numericalize``'s), else item by item."""
    source = dataset.source
    texts = source.tls[0] if isinstance(source, TfmdDatasets) else source
    column = texts.encoded if isinstance(texts, TfmdLists) else None
    if (isinstance(column, (pa.Array, pa.ChunkedArray)) and column.null_count == 0
            and (pa.types.is_list(column.type) or pa.types.is_large_list(column.type))):
        return pc.list_value_length(column).to_numpy().astype(np.int64)[dataset.idxs]
    out = np.empty(len(dataset), dtype=np.int64)
    for k, row in enumerate(dataset.idxs):
        item = dataset.source[int(row)]
        part = item[0] if isinstance(item, tuple) else item
        try:
            out[k] = len(part)
        except TypeError:
            raise ParameterError(f"SortedDL sorts items by the length of their first part (a text's token ids); item "
                                 f"{int(row)}'s is a {type(part).__name__} ({part!r:.60}), which has none: give "
                                 "SortedDL the items of Datasets(items, [[Tokenizer(), Numericalize()], ...]), or leave "
                                 "dl_type out") from None
    return out


class SortedDL(ItemsDataLoader, SortedDataLoader):
    """fastai's ``SortedDL`` over the items of a ``TfmdLists`` or ``Datasets`` (chapter 11's
    ``dsets.dataloaders(bs=64, dl_type=SortedDL, before_batch=pad_input)``): batches of texts of similar lengths,
    chosen as :class:`SortedDataLoader` chooses a ``TextBlock``'s (training: shuffled chunks of ``bs * chunk_mult``
    sorted by length, the batch of the longest text first; validation: longest first), so ``pad_input`` adds little
    padding. An item's length is its first part's (its token ids), as the transforms encoded it.

    >>> from pipekit.data import TfmdLists
    >>> ids = [torch.arange(n) for n in (3, 9, 1, 6, 2, 8)]
    >>> dls = TfmdLists(ids, [], splits=[[0, 1], [2, 3, 4, 5]]).dataloaders(bs=2, dl_type=SortedDL, device="cpu")
    >>> dls.valid.lengths.tolist(), [b.tolist() for b in dls.valid.batch_plan(0)]
    ([1, 6, 2, 8], [[3, 1], [2, 0]])
    """

    _lengths: tuple[Any, np.ndarray] | None = None  # (the dataset, its items' lengths), made once per dataset

    @property
    def lengths(self) -> np.ndarray:
        """Token count of each item of the dataset, in dataset order (see :func:`_item_lengths`)."""
        if not isinstance(self.dataset, ItemsDataset):
            return super().lengths
        if self._lengths is None or self._lengths[0] is not self.dataset:
            self._lengths = (self.dataset, _item_lengths(self.dataset))
        return self._lengths[1]


def _refuse_one_stream(data: Any) -> None:
    """Refuse the book's flat stream of ids (``nums``: a list, ``L``, 1-D tensor or array of ints) saying how to
    give it: the loader takes one id sequence per text, so one stream is a list holding it."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        dtype_ok = (not data.dtype.is_floating_point and not data.dtype.is_complex and data.dtype != torch.bool
                    if isinstance(data, torch.Tensor) else data.dtype.kind in "iu")
        flat = data.ndim == 1 and dtype_ok
    elif isinstance(data, (str, bytes, dict)) or not hasattr(data, "__len__") or not hasattr(data, "__iter__"):
        flat = False
    else:
        flat = len(data) > 0 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in data)
    if flat:
        raise ParameterError(
            f"LMDataLoader: got one stream of {len(data)} token ids (a {type(data).__name__} of ints); it takes a "
            "list of id sequences, one per text, so wrap the stream in a list: LMDataLoader([tensor(nums)], ...)")


def _lm_dataset(data: Any) -> Any:
    """A language model's dataset: a pipekit dataset as it is; token ids (an Arrow list array from
    ``Numericalize.encode``, or a list of id sequences) in a dataset of one TextStore; anything else refused with
    the ways to build language-model loaders."""
    _refuse_one_stream(data)
    if callable(getattr(data, "gather", None)):
        return data
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks()
    if isinstance(data, pa.Array) and (pa.types.is_list(data.type) or pa.types.is_large_list(data.type)):
        if not pa.types.is_integer(data.type.value_type):
            raise ParameterError(f"LMDataLoader takes token ids; this Arrow array holds {data.type.value_type} values "
                                 "(numericalize the tokens first: Numericalize().encode(tokens))")
        return ArrayDataset([TextStore(data.cast(pa.list_(pa.int32())))])
    if isinstance(data, (list, tuple)) and len(data) and all(
            isinstance(t, (list, tuple, np.ndarray, torch.Tensor)) for t in data):
        try:
            ids = [np.asarray(t.tolist() if isinstance(t, torch.Tensor) else t).reshape(-1) for t in data]
            bad = next((i for i, a in enumerate(ids) if len(a) and a.dtype.kind not in "iu"), None)
        except (TypeError, ValueError):
            bad = 0
        if bad is not None:
            raise ParameterError(f"LMDataLoader: text {bad} is not a sequence of token ids (integers); numericalize the "
                                 "tokens first: Numericalize().encode(tokens)")
        return ArrayDataset([TextStore(pa.array([a.tolist() for a in ids], pa.list_(pa.int32())))])
    raise ParameterError(
        f"LMDataLoader takes the token ids of texts (what Numericalize.encode returns, or a list of id lists) or a "
        f"dataset with a TextStore; got {type(data).__name__}. Language-model loaders from texts: "
        "TextDataLoaders.from_df(df, text_col='text', is_lm=True), or DataBlock(blocks=TextBlock.from_df('text', "
        "is_lm=True), get_x=ColReader('text'), splitter=RandomSplitter(0.1)).dataloaders(df)")


class LMDataLoader(DataLoader):
    """Language-model batches: (x, y) windows of ``seq_len`` tokens, y shifted by one.

    Each epoch the texts are shuffled (training) and concatenated into one stream, cut into ``bs``
    contiguous streams; batch ``i`` is columns ``i*seq_len .. (i+1)*seq_len`` of every stream, so row
    ``r`` of a batch continues row ``r`` of the previous one and a model may keep its hidden state.

    >>> from pipekit.data import ArrayDataset
    >>> import pyarrow as pa
    >>> ids = pa.array([list(range(0, 10)), list(range(10, 25))], pa.list_(pa.int32()))
    >>> dl = LMDataLoader(ArrayDataset([TextStore(ids)]), bs=2, seq_len=5, device="cpu", num_workers=0)
    >>> x, y = dl.one_batch()
    >>> x.tolist(), y.tolist(), len(dl)
    ([[0, 1, 2, 3, 4], [12, 13, 14, 15, 16]], [[1, 2, 3, 4, 5], [13, 14, 15, 16, 17]], 3)

    As in the book, the ids themselves may be given (``LMDataLoader(num.encode(tokens))``, or a list of id
    lists): they are wrapped in a dataset of one :class:`~pipekit.text.TextStore`.

    >>> LMDataLoader([list(range(0, 10)), list(range(10, 25))], bs=2, seq_len=5, device="cpu").one_batch()[0].tolist()
    [[0, 1, 2, 3, 4], [12, 13, 14, 15, 16]]
    """

    def __init__(self, dataset: Any, bs: int = 64, seq_len: int | None = None, **kwargs: Any):
        """``seq_len`` defaults to the TextBlock's (72 without one); ``kwargs`` are the
        :class:`~pipekit.data.DataLoader`'s."""
        super().__init__(_lm_dataset(dataset), bs=bs, **kwargs)
        from pipekit.text.blocks import TextBlock

        if seq_len is None:
            seq_len = next((b.seq_len for b in self.blocks if isinstance(b, TextBlock)), 72)
        check("LMDataLoader", seq_len=(seq_len, Interval(1, None, integer=True)))
        self.seq_len = int(seq_len)
        self._check_size()

    @property
    def n_tokens(self) -> int:
        return int(_text_store(self.dataset).lengths[self.dataset.idxs].sum())

    @property
    def stream_len(self) -> int:
        """Tokens per stream (each of the ``bs`` rows)."""
        return (self.n_tokens - 1) // self.bs

    def _check_size(self) -> None:
        if self.stream_len < 2:
            raise DataError(f"LMDataLoader: {self.n_tokens} tokens cannot make {self.bs} streams of at least 2 "
                            f"tokens; lower bs (at most {max((self.n_tokens - 1) // 2, 1)}) or add texts")

    def __len__(self) -> int:
        bl = self.stream_len
        return bl // self.seq_len if self.drop_last and bl >= self.seq_len else -(-bl // self.seq_len)

    def batch_plan(self, epoch: int) -> list[tuple]:
        self._check_size()
        store = _text_store(self.dataset)
        idxs = self.dataset.idxs
        order = np.random.default_rng([self.seed, epoch]).permutation(len(idxs)) if self.shuffle else \
            np.arange(len(idxs))
        stream = torch.from_numpy(store.stream(idxs[order]).astype(np.int64))
        bl = self.stream_len
        x = stream[: self.bs * bl].view(self.bs, bl)
        y = stream[1: self.bs * bl + 1].view(self.bs, bl)
        return [(x, y, i, min(i + self.seq_len, bl)) for i in range(0, bl, self.seq_len)][: len(self)]

    def create_batch(self, entry: tuple) -> tuple:
        x, y, a, b = entry
        return x[:, a:b].contiguous(), y[:, a:b].contiguous()

    @property
    def vocab(self) -> Any:
        """The texts' vocab: the ``TextBlock``'s, or for the loaders of a ``TfmdLists``' token ids that of its
        ``Numericalize`` (``made_from``), as fastai's ``dls.vocab`` of a language model."""
        source = self.__dict__.get("made_from")
        return source.vocab if source is not None and not self.blocks else super().vocab

    def text_decoder(self) -> Any:
        """How a window of token ids is read back: by the ``TextBlock``'s decode, or, for the loaders of a
        ``TfmdLists``' token ids (``tls.dataloaders(dl_type=LMDataLoader)``), by its transforms (``made_from``)."""
        if self.blocks:
            return self.blocks[0].decode
        source = self.__dict__.get("made_from")
        if source is None:
            raise ParameterError("this LMDataLoader was given token ids alone, with nothing to read them back into "
                                 "text; build the loaders with TfmdLists(items, [Tokenizer(), Numericalize()])"
                                 ".dataloaders(dl_type=LMDataLoader, seq_len=...) or a TextBlock(is_lm=True), or look "
                                 "at the ids with dl.one_batch()")
        return source.decode

    def decode_batch(self, batch: tuple, max_n: int | None = None) -> list[tuple]:
        decode = self.text_decoder()
        n = len(batch[0]) if max_n is None else min(max_n, len(batch[0]))
        return [(decode(batch[0][k]), decode(batch[1][k])) for k in range(n)]

    def show_batch(self, max_n: int = 9, path: str | None = None, nrows: int | None = None,
                   ncols: int | None = None, figsize: tuple[float, float] | None = None, unique: bool = False) -> Any:
        """The first batch's windows, one per row, each beside its target: the same tokens moved on by one
        (the columns ``text`` and ``text_``, as fastai shows them), the next token the model learns to predict
        at each position. ``nrows`` (at most ``max_n``) limits the rows; the two columns are fixed. Returns the
        PNG path when one was written."""
        from pipekit.data.plotting import draw_text, get_pyplot, plot_mode, savefig_or_show, show_text_table
        from pipekit.data.show import CELL_INCHES

        check_positive_int("show_batch", "max_n", max_n)
        if unique:
            raise ParameterError("show_batch(unique=True) shows one item's augmentations; a language model's "
                                 "batches have none: call show_batch(max_n=...)")
        if ncols not in (None, 2):
            raise ParameterError(f"show_batch: a language model's batch is shown in 2 columns (text, text_), "
                                 f"got ncols={ncols}")
        if nrows is not None:
            check_positive_int("show_batch", "nrows", nrows)
            max_n = min(max_n, nrows)
        show, rows = self.blocks[0].show if self.blocks else draw_text, self.decode_batch(self.one_batch(), max_n=max_n)
        if path is None and plot_mode() == "inline":  # in a notebook: a table of the two columns, as fastai's
            show_text_table({"text": [str(r[0]) for r in rows], "text_": [str(r[1]) for r in rows]})
            return None
        fig, axes = get_pyplot().subplots(len(rows), 2, squeeze=False, layout="constrained",
                                          figsize=figsize or (4 * CELL_INCHES, 0.6 * CELL_INCHES * len(rows)))
        for i, pair in enumerate(rows):
            for j, value in enumerate(pair):
                show(axes[i, j], value, ("text", "text_")[j] if i == 0 else None)
        return savefig_or_show(fig, path, name="show_batch")
