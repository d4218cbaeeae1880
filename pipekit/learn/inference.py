"""Predictions: over a whole loader (``get_preds``), for one item (``predict``) and with TTA (``tta``)."""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipekit.core.errors import DataError, ParameterError, warn
from pipekit.core.protocols import Loader
from pipekit.core.validate import (BOOL, Interval, Is, Options, FastaiKeyword, argument_names, check, check_arguments,
                                   check_positive_int, is_pandas)
from pipekit.data.lists import fastuple
from pipekit.data.loader import DataLoader, batch_parts
from pipekit.data.show import are_table_rows, show_items
from pipekit.learn.callbacks import FiniteInputsCheck, GatherPreds, Recorder, check_finite_weights
from pipekit.learn.callbacks.training import item_order
from pipekit.data.transform import BatchPipeline, BatchTransform, as_list, grouped_batch_tfms
from pipekit.learn.callbacks.core import Cbs
from pipekit.learn.losses import BaseLoss, Reducible, loss_from_kind

if TYPE_CHECKING:
    from pipekit.learn.learner import Learner

__all__ = ["get_preds", "predict", "tta", "show_results", "one_item_source", "loss_methods"]


def _cat(parts: list[Any], dim: int = 0) -> Any:
    """``parts`` (one per batch) joined along ``dim``: 0 stacks the batches' items, 1 (a language model's streams)
    continues each row; a part of fewer dimensions than ``dim + 1`` is joined along 0."""
    if not parts:
        return None
    first = parts[0]
    if isinstance(first, torch.Tensor):
        if first.ndim == 0:
            return torch.stack(parts)
        d = dim if first.ndim > dim else 0
        # sequence outputs of different lengths (padded text batches) cannot be concatenated
        if len({p.shape[:d] + p.shape[d + 1:] for p in parts}) > 1:
            return [row for p in parts for row in p]
        return torch.cat(parts, d)
    if isinstance(first, (tuple, list)):
        return type(first)(_cat([p[i] for p in parts], dim) for i in range(len(first)))
    return [v for p in parts for v in p]


def _streams(dl: Loader) -> bool:
    """Whether ``dl`` batches a language model's token streams (an ``LMDataLoader``: it has a ``stream_len``): row
    ``r`` of each batch continues row ``r`` of the batch before, so the batches join along the sequence."""
    return isinstance(dl, DataLoader) and isinstance(getattr(type(dl), "stream_len", None), property)


def _reindex(x: Any, inv: np.ndarray) -> Any:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x[torch.from_numpy(inv)]
    if isinstance(x, tuple):
        return tuple(_reindex(v, inv) for v in x)
    if isinstance(x, list):
        return [x[i] for i in inv]
    return x


class GivenBatches:
    """Batches given as they are, as a loader of them: the book's ``learn.get_preds(dl=[(x, y)])`` (``n_inp`` of each
    batch's tensors are the model's inputs, the rest its targets), or one batch pipekit makes.

    >>> import torch
    >>> dl = GivenBatches([(torch.zeros(2, 3), torch.ones(2))], n_inp=1)
    >>> len(dl), [len(b) for b in dl]
    (1, [2])
    """

    def __init__(self, batches: Sequence[Any], n_inp: int):
        bad = [i for i, b in enumerate(batches) if not (isinstance(b, (list, tuple)) and len(b) >= n_inp and all(
            isinstance(t, torch.Tensor) for t in b))]
        if bad or not batches:
            raise ParameterError(f"dl: a list or tuple given as the loader must hold batches, each a tuple of {n_inp} input "
                                 f"tensor(s) and the targets (x, y) as dls.one_batch() gives them; "
                                 f"{'it is empty' if not batches else f'item {bad[0]} is not'}. For new items use "
                                 "learn.dls.test_dl(items)")
        self.batches, self.n_inp = [tuple(b) for b in batches], n_inp

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.batches)


def _empty_batch(dl: Loader) -> tuple | None:
    """A batch of zero rows from ``dl``'s dataset (right dtypes and trailing shapes), if it can make one."""
    if not isinstance(dl, DataLoader) or len(dl.dataset) != 0:
        return None
    epoch = dl.epoch
    try:  # the loader's own path: gather, batch transforms, device
        return tuple(dl._finish(epoch, 0, dl._produce(epoch, 0, np.zeros(0, dtype=np.int64))))
    except (IndexError, ValueError, RuntimeError, TypeError):  # a dataset that cannot gather nothing
        return None


class _PerItem:
    """A loss function called with ``reduction="none"``: per-item losses from a plain function."""

    reduction = "none"

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args, reduction="none")


def _per_item(fn: Any, who: str) -> _PerItem:
    """``fn`` giving per-item losses, or a clear error naming ``who`` asked where it cannot (it takes no
    ``reduction``)."""
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "reduction" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        name = getattr(fn, "__name__", type(fn).__name__)
        raise ParameterError(f"{who} needs a loss per item, and loss_func {name!r} gives one number per "
                             "batch and takes no reduction=: use a pipekit loss (CrossEntropyLossFlat(), "
                             "MSELossFlat()...), a torch loss, or a function taking reduction='none'")
    return _PerItem(fn)


@contextlib.contextmanager
def loss_not_reduced(learn: Learner, who: str = "learn.loss_not_reduced()") -> Iterator[None]:
    """``learn.loss_func`` giving the loss of each item inside the block (``learn.loss_not_reduced()``, and
    ``get_preds(with_loss=True)`` while it gathers): a loss with a ``reduction`` is switched to ``'none'``, a plain
    function is called with ``reduction='none'``; put back on leaving, after an error too."""
    with learn._lock:
        loss_func = learn.loss_func
        reducible = loss_func if isinstance(loss_func, Reducible) else None
        old = reducible.reduction if reducible is not None else "mean"
        if reducible is not None:
            reducible.reduction = "none"
        elif loss_func is not None:  # a plain function, such as F.cross_entropy
            learn.loss_func = _per_item(loss_func, who)
        try:
            yield
        finally:
            if reducible is not None:
                reducible.reduction = old
            learn.loss_func = loss_func


def loss_methods(loss_func: Any) -> tuple[Callable[[Any], Any] | None, Callable[[Any], Any] | None]:
    """The ``activation`` and ``decodes`` of ``loss_func``, each None where it has none: a pipekit loss's, and those of
    any loss object that has them as methods (fastai's losses, a class of the user's), as ``get_preds`` applies them
    to the outputs (probabilities, then class indices or labels). A plain function has neither: its outputs are given
    as the model gives them. A subclass of ``BaseLoss`` has only those it defines itself (``CrossEntropyLossFlat``'s
    softmax and argmax): BaseLoss's own are the identity, which leaves the outputs as they are (``MSELossFlat``, a
    loss of the user's over several targets that defines neither).

    >>> import torch
    >>> class Tempered:
    ...     def __call__(self, out, targ): return torch.nn.functional.cross_entropy(out, targ)
    ...     def activation(self, x): return torch.softmax(x / 2, dim=-1)
    ...     def decodes(self, x): return x.argmax(-1)
    >>> act, dec = loss_methods(Tempered())
    >>> dec(act(torch.tensor([[0.0, 2.0]]))).tolist(), loss_methods(torch.nn.functional.cross_entropy)
    ([1], (None, None))
    >>> from pipekit.learn import CrossEntropyLossFlat, MSELossFlat
    >>> loss_methods(MSELossFlat()), [m is not None for m in loss_methods(CrossEntropyLossFlat())]
    ((None, None), [True, True])
    """
    if isinstance(loss_func, BaseLoss):  # BaseLoss's own pair is the identity: a loss that keeps it has neither
        own_act, own_dec = loss_func.activation, loss_func.decodes
        return (None if getattr(own_act, "__func__", None) is BaseLoss.activation else own_act,
                None if getattr(own_dec, "__func__", None) is BaseLoss.decodes else own_dec)
    act, dec = getattr(loss_func, "activation", None), getattr(loss_func, "decodes", None)
    return (act if callable(act) else None), (dec if callable(dec) else None)


def get_preds(learn: Learner, /, ds_idx: int = 1, dl: Loader | None = None, with_input: bool = False,
              with_decoded: bool = False, with_loss: bool = False, act: Callable | None = None, reorder: bool = True,
              cbs: Cbs = None, with_targs: bool = True, with_preds: bool = True, **fastai: Any) -> tuple:
    """Predictions over a whole set (``learn.get_preds``): ``([inputs,] preds, targs[, decoded][, losses])``.
    ``with_targs=False`` and ``with_preds=False`` (fastai's) give None in the place of ``targs`` and ``preds``, the
    tuple keeping its length (``decoded``, when asked for, is still given). fastai's ``inner=False``,
    ``save_preds=None``, ``save_targs=None`` and ``pickle_protocol=2`` are taken (their defaults, which change
    nothing; see :data:`_FASTAI_GET_PREDS`), and so is ``concat_dim`` at the axis pipekit joins the batches along (0;
    1 for a language model, see below); ``inner=True``, files to save to, a pickling protocol and another
    ``concat_dim`` are refused, saying what pipekit does instead.

    ``preds`` are activated (softmax/sigmoid from the loss, or ``act``, applied to each batch's outputs) and
    ``decoded`` are the loss's decoding of them (class indices, token ids); ``targs`` is None without labels. A loss
    of the user's that has ``activation`` and ``decodes`` methods, as fastai's losses do, gives them (see
    :func:`loss_methods`); a plain function gives none, and the outputs are returned as they are.
    Each is one tensor, or, when the batches' outputs differ in shape past the first dimension (text batches
    of different sequence lengths), a list of one tensor per item.

    A language model's loader (``LMDataLoader``) cuts the text into ``bs`` streams and gives them in windows
    of ``seq_len`` tokens, row ``r`` of each batch continuing row ``r`` of the one before (the last window may
    be shorter). Its batches are joined along the sequence, as fastai's ``LMLearner.get_preds`` does
    (``concat_dim=1``), so each row is one whole stream: ``preds`` is ``(bs, stream_len, vocab)`` (the
    probability of each next token), ``targs``, ``decoded`` and inputs ``(bs, stream_len)`` token ids, with
    ``targs[r, t]`` the token after ``inputs[r, t]``, and ``losses`` ``(bs, n_batches)``, the mean loss of
    each window of each stream. ``preds.argmax(-1) == targs`` averaged is the ``accuracy`` ``validate``
    reports (both count every token).

    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.data import get_image_files
    >>> from pipekit.learn import Learner
    >>> from pipekit.vision import ImageDataLoaders
    >>> path = D.path("mnist_tiny")
    >>> dls = ImageDataLoaders.from_folder(path, img_cls="L", bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    >>> preds, targs, decoded = learn.get_preds(with_decoded=True)    # the validation set: 699 images, 2 classes
    >>> tuple(preds.shape), tuple(targs.shape), bool((decoded == preds.argmax(1)).all())
    ((699, 2), (699,), True)
    >>> preds, targs = learn.get_preds(dl=dls.test_dl(get_image_files(path / "test")))    # new images, no labels
    >>> tuple(preds.shape), targs
    ((20, 2), None)
    """
    check("get_preds", with_targs=(with_targs, BOOL), with_preds=(with_preds, BOOL))
    # the learner is given as the method's own (learn.get_preds), never by name
    check_arguments("get_preds", fastai, [*argument_names(get_preds), "concat_dim"], fastai=_FASTAI_GET_PREDS)
    concat_dim = fastai.get("concat_dim")  # checked once the loader is known
    with learn._lock:  # the pass and its gathering callbacks on the learner, one call at a time
        dl = learn._get_dl(ds_idx, dl)
        dim = 1 if _streams(dl) else 0  # a language model's windows: each row continues along the sequence
        _check_concat_dim(concat_dim, dim)
        check_finite_weights(learn.model, "get_preds")
        epoch = dl.epoch if isinstance(dl, DataLoader) else 0
        gather = GatherPreds(with_input, with_loss)
        extra = [gather, FiniteInputsCheck(dl, epoch), *as_list(cbs)]
        loss_func = learn.loss_func
        per_item = loss_not_reduced(learn, "with_loss=True") if with_loss else contextlib.nullcontext()
        was_training = learn.training
        learn.training = False

        def run() -> None:
            learn._do_validate(dl)
            if not gather.preds:
                # no rows: one zero-row batch through the model gives empty outputs of the right shape/dtype
                empty = _empty_batch(dl)
                if empty is not None:
                    learn._do_validate(GivenBatches([empty], dl.n_inp))

        try:
            # a validation-only pass: the callbacks see before_fit/before_epoch ... after_epoch/after_fit around it
            with per_item, learn.removed_cbs(Recorder):
                learn.validation_pass(run, extra, bar="get_preds")
        finally:
            learn.training = was_training
        own_act, decodes = loss_methods(loss_func)
        act = own_act if act is None else act
        # activated and decoded batch by batch: batches whose outputs cannot be concatenated get them too
        parts = [act(p) if act is not None and isinstance(p, torch.Tensor) else p for p in gather.preds]
        dec_parts = [decodes(p) if decodes is not None and isinstance(p, torch.Tensor) else p for p in parts] \
            if with_decoded else []
        preds, targs, decoded = _cat(parts, dim), _cat(gather.targs, dim), _cat(dec_parts, dim)
        inputs = _cat(gather.inputs, dim) if with_input else None
        losses = (torch.stack(gather.losses, 1) if dim else torch.cat(gather.losses)) if gather.losses else None
        if with_loss and losses is None and targs is None and len(dl):  # batches, and no targets to score them by
            raise DataError("get_preds: with_loss=True gives each item's loss against its target, and this loader "
                            "carries no targets (dls.test_dl(items) reads the inputs only); read labelled items with "
                            "dls.test_dl(items, with_labels=True), or leave with_loss out for the predictions only")
        if reorder and isinstance(preds, (torch.Tensor, list)):
            order = item_order(dl, epoch, len(preds))
            if order is not None:
                inv = np.argsort(order)
                preds, targs, inputs, losses, decoded = (_reindex(v, inv) for v in (preds, targs, inputs, losses,
                                                                                     decoded))
        targs = targs if with_targs else None
        preds = preds if with_preds else None
        out: list[Any] = [inputs, preds, targs] if with_input else [preds, targs]
        if with_decoded:
            out.append(decoded)
        if with_loss:
            out.append(losses)
        return tuple(out)


def one_item_source(item: Any, n_inp: int = 1, table: bool = False) -> Any:
    """``item`` (see :func:`predict` for what it may be) as the source of a one-item test loader (``n_inp``:
    the model's inputs; a model of one input refuses a list of files, texts or images; ``table``: the model reads
    a table's rows, and refuses an image, a number or an array, which have no column names).

    >>> from pipekit.core import ParameterError
    >>> from pipekit.learn.inference import one_item_source
    >>> one_item_source("a great film"), one_item_source({"age": 40, "education": "Masters"}, table=True)
    (['a great film'], [{'age': 40, 'education': 'Masters'}])
    >>> try:
    ...     one_item_source(["a.png", "b.png"])
    ... except ParameterError as e:
    ...     print(e)
    predict takes one item; this list holds 2 (files, texts or images): for several use learn.get_preds(...)
    """
    if item is None:  # as a NaN is refused, rather than as a null row of a table to build data from
        raise DataError("predict: the item is None, which is nothing to predict on; give the item: a str for a text "
                        "model, an image (a file path, its bytes, a PIL image or an array of pixels) for an image "
                        "model, a row (a dict, a pandas Series or a one-row DataFrame) for a table's model")
    if is_pandas(item, "Series"):
        return [item.to_dict()]
    if is_pandas(item, "DataFrame") or type(item).__module__.split(".")[0] == "polars" and type(item).__name__ == \
            "DataFrame":
        if len(item) != 1:
            raise ParameterError(f"predict takes one item; this DataFrame has {len(item)} rows: for several use "
                                 "learn.get_preds(dl=learn.dls.test_dl(df))")
        return item
    libraries = {c.__module__.split(".")[0] for c in type(item).__mro__}  # PIL for pipekit's PILImage too
    if table and ("PIL" in libraries or isinstance(item, (bool, int, float, bytes, np.generic))
                  or hasattr(item, "ndim") or "polars" in libraries and type(item).__name__ == "Series"):
        raise DataError(f"predict: this model reads rows of a table, and the item ({type(item).__name__}) is no row: "
                        "a table's model predicts on a row, a dict ({column: value}), a pandas Series or a one-row "
                        "DataFrame")
    # a fastuple (chapter 11's SiameseImage(img1, img2)) is one item of several parts, as fastai's
    if n_inp == 1 and isinstance(item, (list, tuple)) and not isinstance(item, fastuple) and len(item) >= 1 and all(
            isinstance(v, (str, bytes, os.PathLike)) or type(v).__module__.split(".")[0] == "PIL"
            or (hasattr(v, "ndim") and v.ndim >= 2) for v in item):
        if len(item) == 1:
            raise ParameterError(f"predict takes one item, not a {type(item).__name__} of one: pass the item itself, "
                                 "learn.predict(items[0])")
        raise ParameterError(f"predict takes one item; this {type(item).__name__} holds {len(item)} (files, texts or "
                             "images): for several use learn.get_preds(dl=learn.dls.test_dl(items))")
    return [item]


#: fastai's ``get_preds`` keywords that pipekit's has no parameter for: taken at their defaults, which change nothing
#: (``concat_dim`` is taken by name and checked by :func:`_check_concat_dim`), refused otherwise saying what to do
_FASTAI_GET_PREDS = {
    "inner": FastaiKeyword(
        "{given} is fastai's flag for a call made inside a fit (by a callback); pipekit's get_preds needs none: called "
        "from a callback it runs a validation-only pass of its own inside the fit, and the fit's record is left as it "
        "was; leave inner out", taken=False),
    **{name: FastaiKeyword(
        f"{{given}} (fastai's: each batch's {what} saved to files) is not taken; get_preds returns the {what}: save "
        "them yourself, e.g. preds, targs = learn.get_preds(); torch.save(preds, 'preds.pt'); leave "
        "save_preds/save_targs out", taken=None) for name, what in (("save_preds", "predictions"),
                                                                     ("save_targs", "targets"))},
    "pickle_protocol": FastaiKeyword(
        "{given} (fastai's: how the save_preds/save_targs files are pickled) is not taken: get_preds saves no files, "
        "and pipekit writes no pickle; save what it returns yourself (torch.save(preds, 'preds.pt')); leave "
        "pickle_protocol out", taken=2),
}


def _check_concat_dim(concat_dim: Any, dim: int) -> None:
    """Refuse fastai's ``concat_dim`` (the axis ``get_preds`` joins the batches' outputs along) unless it is the axis
    pipekit joins them along, ``dim``: 0, the items, as fastai's default; 1, the sequence, for a language model's
    windows, as fastai's ``LMLearner.get_preds``. None: not given.

    >>> _check_concat_dim(None, 0), _check_concat_dim(0, 0), _check_concat_dim(1, 1)
    (None, None, None)
    >>> _check_concat_dim(1, 0)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: get_preds: concat_dim=1 (fastai's axis to join the batches' outputs along) is not taken: pipekit joins them along dim 0, the items (one row each), as fastai's default concat_dim=0; leave concat_dim out (and lay out what get_preds returns otherwise yourself, if needed)
    """
    if concat_dim is None or (isinstance(concat_dim, (int, np.integer)) and not isinstance(concat_dim, bool)
                              and concat_dim == dim):
        return
    along = ("dim 0, the items (one row each), as fastai's default concat_dim=0" if dim == 0 else
             "dim 1, the sequence, for a language model's windows (each row one whole stream), as fastai's "
             "LMLearner.get_preds does (concat_dim=1)")
    raise ParameterError(f"get_preds: concat_dim={concat_dim!r} (fastai's axis to join the batches' outputs along) is "
                         f"not taken: pipekit joins them along {along}; leave concat_dim out (and lay out what "
                         f"get_preds returns otherwise yourself, if needed)")


def _named_pass(learn: Learner, bar: str, f: Callable[[], None]) -> None:
    """Run ``f`` (which calls ``get_preds``) as one validation-only pass named ``bar``, as ``get_preds`` runs its own:
    the progress bar and the messages of the pass's callbacks (``FiniteInputsCheck``) name the call the user made."""
    was_training = learn.training
    learn.training = False
    try:
        with learn.removed_cbs(Recorder):
            learn.validation_pass(f, bar=bar)
    finally:
        learn.training = was_training


def predict(learn: Learner, item: Any, rm_type_tfms: None = None, with_input: bool = False) -> tuple[Any, ...]:
    """Predict one item (``learn.predict``): ``(decoded, decoded_tensor, probabilities)``; with
    ``with_input=True``, as fastai's, ``(input, decoded, decoded_tensor, probabilities)``, the input as the model
    read it, decoded (an image as its (H, W, C) pixels, a text as its tokens' text, a table row as its values).

    ``decoded`` is what a person reads (a label, a list of labels, a number, points or boxes in pixels of
    the input image); ``decoded_tensor`` the model's decoded output (a class index, one-hot labels, -1..1
    coordinates); ``probabilities`` the activated output. For data of several targets (``dls.c`` a list, a model
    giving their outputs side by side), ``decoded`` is each target's value read from its own outputs (a category's
    label, a multi-label target's labels, a number), and ``decoded_tensor`` their indices when every target is a
    category, else a tuple of each target's decoded tensor (see ``_per_target``); ``probabilities`` are the
    outputs as ``get_preds`` gives them. For a table's row (or a rating's), ``decoded`` is the label or number
    itself, which also shows the row with it as the model read it: ``row, clas, probs = learn.predict(df.iloc[0])``,
    then ``row.show()``.

    ``item`` is one item as a user has it in hand, the same before and after ``load_learner``:

    - an image: a file path (str or pathlib.Path), the file's bytes, a PIL image, or a NumPy array / torch
      tensor of pixels (uint8 (H, W) grey, (H, W, C) or (C, H, W); floats (C, H, W) in 0..1);
    - a text: the text as a str, or a ``pathlib.Path`` of a text file, which is read. A str is always the text
      itself, never a file it names (as in fastai, whatever the model was trained on: a model served on users'
      texts opens no file a text names); one that looks like a text file's name (``"review.txt"``) is refused,
      pointing to ``Path("review.txt")``;
    - a row, for tables and for models whose getters read columns (``ColReader``, a function of a row):
      a dict, a pandas Series, or a one-row Polars or pandas DataFrame;
    - for a model built from arrays (``DataLoaders.from_stores``, ``dataloaders_from_arrays``): one item
      shaped as one training item (an image (H, W) or (H, W, C), a feature vector);
    - for loaders of a ``TfmdLists``' items (``tls.dataloaders(after_item=..., after_batch=...)``): an item as its
      items are (a file), or as its transforms make them, which skips those transforms (the Siamese tutorial's
      ``learn.predict(SiameseImage(img1, img2))``: a ``fastuple`` is one item of several parts).

    A row goes through the recipe's getters as the training items did; a bare value (a path, a text, an
    image, an array) is the input itself. Anything else is refused with an error saying what the input
    block takes. Several items: ``learn.get_preds(dl=learn.dls.test_dl(items))``.

    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import Learner
    >>> from pipekit.vision import ImageDataLoaders
    >>> path = D.path("mnist_tiny")
    >>> dls = ImageDataLoaders.from_folder(path, img_cls="L", bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    >>> learn.fit_one_cycle(1, 1e-2)
    >>> label, idx, probs = learn.predict(path / "valid" / "7" / "0.png")   # the label, its index, the probabilities
    >>> label, int(idx), tuple(probs.shape), dls.vocab
    ('7', 1, (2,), ['3', '7'])
    """
    check("predict", rm_type_tfms=(rm_type_tfms, Is(lambda v: v is None, "None (pipekit reads an item through every "
                                                     "step of its recipe)")),
          with_input=(with_input, Options(True, False)))
    with learn._lock:  # one call at a time (see get_preds)
        # loaders of a TfmdLists' items have no recipe: their items say how many parts are inputs
        recipe = learn.dls.recipe
        n_inp = getattr(recipe, "n_inp_", 1) if recipe is not None else getattr(learn.dls, "n_inp", 1)
        blocks = tuple(getattr(learn.dls, "blocks", ()))
        source = one_item_source(item, n_inp, table=are_table_rows(blocks, n_inp))
        dl = learn.dls.test_dl(source, with_labels=False)
        if len(dl.dataset) != 1:  # a table's dict of columns ({"userId": [73, 561], ...}) is as many rows
            raise ParameterError(f"predict takes one item; this {type(item).__name__} holds {len(dl.dataset)}: for several "
                                 "use learn.get_preds(dl=learn.dls.test_dl(items))")
        got: list[Any] = []
        _named_pass(learn, "predict", lambda: got.extend(get_preds(learn, dl=dl, with_input=True, with_decoded=True)))
        inputs, preds, _, dec = got
        learn._check_scores(preds)
        shown: tuple[Any, ...] = (_decoded_input(dl, inputs),) if with_input else ()
        y_block = learn.dls.y_block
        if y_block is None:  # a loader without blocks decodes the prediction itself (a Datasets' label), if it can
            by_loader = decoded_by_loader(learn, dl, inputs, dec)
            return *shown, (dec[0] if by_loader is None else by_loader[0]), dec[0], preds[0]
        ds = dl.dataset
        stores = getattr(ds, "stores", ())[:getattr(ds, "n_inp", 1)]
        size = next((sz for s in stores if (sz := getattr(s, "source_size", lambda i: None)(0)) is not None),
                    None)
        geometry = _valid_geometry(dl, stores)

        def for_people(block: Any, value: Any) -> Any:
            decode = getattr(block, "decode_prediction", None)
            return decode(value, size, geometry=geometry) if callable(decode) else block.decode(value)

        if any(loss_methods(learn.loss_func)):  # the loss reads its outputs itself: its decoding, as fastai's
            per_target = _loss_decoded_targets(learn.dls, dec, preds[0], for_people)
        else:
            per_target = _per_target(learn.dls, preds[0], for_people)
        if per_target is not None:
            return *shown, *per_target
        scored = label_scores(learn.loss_func, y_block, dec[0])
        if (getattr(y_block, "loss_kind", None) == "cross_entropy" and isinstance(scored, torch.Tensor)
                and scored.dtype == torch.bool and scored.shape == (1,)):
            scored = scored[0]  # a single-output binary model's decision (BCEWithLogitsLossFlat): one label
        decoded = for_people(y_block, scored)
        with_row = getattr(learn.dls.recipe, "prediction_of_row", None)  # a table's: the label shows its row
        return *shown, (with_row(source, decoded) if callable(with_row) else decoded), dec[0], preds[0]


def _target_slices(dls: Any, width: int) -> list[tuple[Any, slice]] | None:
    """Each target block of data of several targets (``dls.c`` a list) with its slice of a model's ``width``
    outputs per item, which the model gives side by side in target order (``n_out=sum(dls.c)``); None when the data
    has one target, or when the outputs cannot be split so: another width, or a target with no size or no decoding
    of its own (no ``loss_kind``)."""
    sizes = getattr(dls, "c", None)
    if not isinstance(sizes, list):
        return None
    targets = list(tuple(getattr(dls, "blocks", ()) or ())[getattr(dls, "n_inp", 1):])
    if (len(targets) != len(sizes) or not all(isinstance(s, int) and s > 0 for s in sizes) or width != sum(sizes)
            or any(getattr(b, "loss_kind", None) is None for b in targets)):
        return None
    ends = np.cumsum([0, *sizes]).tolist()
    return [(b, slice(a, e)) for b, a, e in zip(targets, ends, ends[1:])]


def _decode_targets(parts: list[tuple[Any, slice]], outputs: torch.Tensor,
                    for_people: Callable[[Any, Any], Any]) -> tuple[tuple[Any, ...], list[torch.Tensor]]:
    """One item's ``outputs`` (the model's, not activated: a loss over several targets is a function of the user's)
    decoded target by target, each slice as its block's own default loss reads it (a category: softmax, its class
    index; a ``MultiCategoryBlock``: sigmoid, its labels over 0.5; a number: the value): the values for people
    (``for_people(block, decoded)``) and the decoded tensors."""
    shown, decoded = [], []
    for block, part in parts:
        loss = loss_from_kind(block.loss_kind)
        d = loss.decodes(loss.activation(outputs[part]))
        decoded.append(d)
        shown.append(for_people(block, d))
    return tuple(shown), decoded


def _per_target(dls: Any, pred: torch.Tensor, for_people: Callable[[Any, Any], Any]
                ) -> tuple[Any, Any, torch.Tensor] | None:
    """``predict``'s answer for data of several targets (``dls.c`` a list, as the course's multi-target model):
    each target's value read from its own slice of the outputs, which the model gives side by side
    (``n_out=sum(dls.c)``), as its block reads a prediction (see :func:`_decode_targets`):
    ``((label0, label1), tensor([idx0, idx1]), outputs)`` for categories, and for other targets each one's value
    (a list of labels, a number) and a tuple of each one's decoded tensor
    (``(('3', ['3', 'big']), (tensor(0), tensor([True, False, True, False])), outputs)``). Outputs that cannot be
    read so (another width, a target naming no ``loss_kind``) are refused, as ``show_results`` refuses them (see
    :func:`_several_targets_unread`). None for data of one target."""
    if not isinstance(getattr(dls, "c", None), list):
        return None
    flat = pred.reshape(-1)
    parts = _target_slices(dls, flat.numel())
    if parts is None:
        raise _several_targets_unread("predict", dls, pred.reshape(1, -1), "read the model's outputs from "
                                      "learn.get_preds(dl=learn.dls.test_dl([item])) yourself")
    shown, decoded = _decode_targets(parts, flat, for_people)
    together = torch.stack(decoded) if all(d.ndim == 0 for d in decoded) else tuple(decoded)
    return shown, together, pred


def _loss_decoded_targets(dls: Any, dec: Any, pred: torch.Tensor, for_people: Callable[[Any, Any], Any]
                          ) -> tuple[Any, Any, torch.Tensor] | None:
    """``predict``'s answer for data of several targets (``dls.c`` a list) when the loss has its own ``activation`` or
    ``decodes`` (:func:`loss_methods`): the first item of ``dec``, the loss's decoding, rather than each target read
    from its slice by its block's default loss (the outputs are the loss's activation, no longer the model's). A
    decoding of one value per target (a tuple) is read by each target's block; another is given as it is. None for
    data of one target."""
    if not isinstance(getattr(dls, "c", None), list):
        return None
    item = tuple(d[0] for d in dec) if isinstance(dec, tuple) else dec[0]
    targets = list(tuple(getattr(dls, "blocks", ()) or ())[getattr(dls, "n_inp", 1):])
    if isinstance(item, tuple) and len(item) == len(targets):
        return tuple(for_people(b, d) for b, d in zip(targets, item)), item, pred
    return item, item, pred


def label_scores(loss_func: Any, block: Any, outputs: Any) -> Any:
    """The outputs a target block reads its labels from (``block.decode``): ``outputs`` as they are, but for a
    multi-label target (``loss_kind`` 'bce') whose loss gives them no activation (PyTorch's
    ``nn.BCEWithLogitsLoss()``, a function of the user's such as the book's ``binary_cross_entropy``; see
    :func:`loss_methods`), their sigmoid:
    the block's 0.5 threshold is on probabilities, as after ``BCEWithLogitsLossFlat``'s activation, so an output of
    0.05 (a probability of 0.51) is a label. A loss that reads probabilities itself (``nn.BCELoss``,
    ``F.binary_cross_entropy``: the model ends in a sigmoid) leaves them as they are. ``predict`` still returns the
    outputs themselves as its decoded tensor and probabilities, as fastai's does with such a loss."""
    if (getattr(block, "loss_kind", None) != "bce" or loss_methods(loss_func)[0] is not None
            or isinstance(loss_func, (BaseLoss, nn.BCELoss))
            or loss_func is F.binary_cross_entropy or not isinstance(outputs, torch.Tensor)
            or not outputs.is_floating_point()):
        return outputs
    return torch.sigmoid(outputs)


def _decoded_input(dl: Any, inputs: Any) -> Any:
    """The one item's input as ``dl`` decodes a batch (its blocks' decode): one value, or a tuple of the inputs of
    a model of several."""
    parts = tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)
    decoded = dl.decode_batch(parts, max_n=1)[0]
    return decoded[0] if len(decoded) == 1 else decoded


def decoded_by_loader(learn: Learner, dl: Any, inputs: Any, decoded: Any) -> list[Any] | None:
    """Each item's prediction as a person reads it, decoded by ``dl`` itself when neither it nor the learner's data
    has blocks to decode it (the loaders of a ``TfmdLists``' or ``Datasets``' items, ``DataLoaders.from_dsets``),
    as fastai's ``dl.decode_batch(inp + (dec,))``: ``decoded`` (the loss's decoding, one tensor, or a tuple of one per
    target) in the place of the targets after the items' ``inputs`` (as ``get_preds`` gives them: one tensor or list
    of rows, a tuple of them for a model of several inputs), the whole decoded as one of the loader's batches, so a
    ``Datasets``' ``Categorize`` gives the class index's label (``'3'``, not ``tensor(0)``). One value per item, a
    tuple of them for several targets; None for a loader with blocks (the target block decodes) or one pipekit did
    not build (it cannot decode)."""
    if not isinstance(dl, DataLoader) or dl.blocks or tuple(getattr(learn.dls, "blocks", ()) or ()):
        return None
    n_inp = dl.n_inp
    parts = tuple(inputs) if n_inp > 1 and isinstance(inputs, (list, tuple)) else (inputs,)
    outs = tuple(decoded) if isinstance(decoded, tuple) else (decoded,)
    rows = dl.decode_batch((*parts, *outs))
    k = len(parts)
    return [row[k] if len(row) == k + 1 else tuple(row[k:]) for row in rows]


def _valid_geometry(dl: Any, stores: Sequence[Any]) -> np.ndarray | None:
    """The (3, 3) matrix from the model input's -1..1 coordinates back to those of the input as stored (after its
    item transform): the batch transforms' validation geometry (a centred crop to a size), composed; None when
    they move no pixel."""
    size = next((s.size for s in stores if isinstance(getattr(s, "size", None), tuple)), None)
    tfms = getattr(getattr(dl, "batch_tfms", None), "tfms", None) or []
    m, moved = np.eye(3), False
    for t in tfms:
        found = t.valid_geometry(size) if size is not None and hasattr(t, "valid_geometry") else None
        if found is not None:
            m, size, moved = m @ found[0], found[1], True
    return m if moved else None


def _pipekit_loader(dl: Loader, what: str) -> DataLoader:
    if not isinstance(dl, DataLoader):
        raise ParameterError(f"{what} needs a pipekit DataLoader, got {type(dl).__name__}")
    return dl


#: ``get_preds``' keywords a ``tta`` call may be given (fastai's ``tta`` passes ``inner=True`` to its own ``get_preds``
#: calls): refused at any value, saying that tta runs its passes itself
_FASTAI_TTA = {name: FastaiKeyword(
    "not taken: {given}, for get_preds: tta calls get_preds itself for each of its passes (as fastai's tta does, "
    "giving it inner=True), and neither fastai's tta nor pipekit's takes get_preds' arguments; leave {names} out, or "
    "call learn.get_preds(...) for the predictions of one plain pass") for name in ("inner", "with_input", "with_decoded", "with_loss", "act",
                                                      "reorder", "cbs", "with_targs", "with_preds", "concat_dim")}


#: target geometries the batch augmentation moves with the image (see ``TransformBlock.geometry``)
_MOVING = ("mask", "points", "bbox")


def tta(learn: Learner, /, ds_idx: int = 1, dl: Loader | None = None, n: int = 4, item_tfms: Any = None,
        batch_tfms: Any = None, beta: float | None = 0.25, use_max: bool = False,
        **fastai: Any) -> tuple[Any, torch.Tensor | None]:
    """Test-time augmentation (``learn.tta``): ``(preds, targs)``, the mean (or, ``use_max``, the max) of ``n``
    passes with the training-time batch augmentation blended with a plain pass by ``beta``:
    ``torch.lerp(aug, plain, beta)``, so 0 is the augmented passes alone and 1 the plain pass. The arguments are
    fastai's, in its order: ``tta(ds_idx=1, dl=None, n=4, item_tfms=None, batch_tfms=None, beta=0.25, use_max=False)``.

    ``item_tfms`` and ``batch_tfms`` give the augmented passes other augmentations than the loader's:
    ``batch_tfms`` (``aug_transforms(size=28)``) take the place of the loader's batch augmentations (its
    ``batch_tfms`` other than ``Normalize``), ``item_tfms`` that of the item transforms it runs on each batch
    (``FlipItem``, ``DihedralItem``; with ``item_tfms`` given, ``RandomResizedCrop``'s random crop of the cached
    image is its validation crop, the centred ``size`` pixels). What is not augmentation stays: the blocks' own
    batch transforms (the images' conversion to float) and ``Normalize``, so the passes see pixels scaled as the
    model was trained on (fastai's replaces the whole ``after_item``/``after_batch``, normalisation included; a
    ``Normalize`` given in ``batch_tfms`` is left out for the loader's own, with a warning when its statistics
    differ). An item transform that resizes (``Resize``) is done once, as the items are encoded, so it cannot change
    per pass: ``item_tfms`` takes per-batch item transforms only. ``batch_tfms=[]`` gives passes with no batch
    augmentation. The plain pass is ``get_preds``' own either way.

    ``beta=None`` blends nothing and gives both, as fastai does: ``(aug, plain), targs = learn.tta(beta=None)``,
    ``aug`` the augmented passes' mean (or max) and ``plain`` the un-augmented predictions, ``get_preds``' own.
    (fastai's ``use_max=True`` ignores ``beta`` and returns the max of ``aug`` and ``plain``; here it only takes
    the max over the augmented passes, blended or returned as any other ``aug``.) The targets returned are the
    plain, un-augmented ones, as ``get_preds`` gives them.

    For targets that move with the image (masks, points, boxes) a prediction on a flipped or warped image
    answers for that flipped image, not the original, so it cannot be averaged with the plain one: each
    augmented pass's targets are compared with the plain pass's, and when the augmentation moved them a
    :class:`ParameterError` says so (use ``get_preds``, or an augmentation that changes lighting only, such as
    ``aug_transforms(do_flip=False, max_rotate=0, max_zoom=1, max_warp=0)`` on images already at their size).
    A loader without targets cannot show whether they would move, so such learners are refused there.

    Where bars show, each pass draws one over its batches, as fastai's: 'tta plain pass', then 'tta pass 1/n' to
    'tta pass n/n' (``learn.no_bar()`` hides them).

    fastai's ``tta`` takes no other keyword, and neither does this one: ``get_preds``' own (``inner=``, say, which a
    fastai ``tta`` passes its ``get_preds`` calls itself) are refused, saying so (:data:`_FASTAI_TTA`).

    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import Learner
    >>> from pipekit.vision import ImageDataLoaders, aug_transforms
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0,
    ...                                    batch_tfms=aug_transforms(size=28, do_flip=False))
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    >>> learn.fit(1, 1e-2)
    >>> preds, targs = learn.tta(n=2)           # 2 augmented passes over the 699 validation images, blended
    >>> tuple(preds.shape), tuple(targs.shape)
    ((699, 2), (699,))
    >>> (aug, plain), targs = learn.tta(n=2, beta=None)
    >>> bool((plain == learn.get_preds()[0]).all())     # the plain pass is get_preds' own
    True
    """
    check_arguments("tta", fastai, argument_names(tta), fastai=_FASTAI_TTA)
    check_positive_int("tta", "n", n)
    check("tta", beta=(beta, Interval(0, 1, none_ok=True)))
    for name, value in (("item_tfms", item_tfms), ("batch_tfms", batch_tfms)):
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            raise ParameterError(f"tta: {name}={value!r} is a number, not a transform: in fastai's order, which tta "
                                 "takes, the 4th and 5th arguments are item_tfms and batch_tfms (tta(ds_idx, dl, n, "
                                 f"item_tfms, batch_tfms, beta, use_max)), so beta is given by name: "
                                 f"learn.tta(n=..., beta={value!r})")
    item_steps = _tta_tfms("item_tfms", item_tfms)
    batch_steps = _tta_tfms("batch_tfms", batch_tfms)
    with learn._lock:  # every pass, one call at a time (see get_preds)
        dl = _pipekit_loader(learn._get_dl(ds_idx, dl), "tta")
        n_inp = dl.n_inp
        # the model's targets are the learner's data's (a test loader may carry none)
        targets = [*tuple(dl.blocks or ())[n_inp:], *tuple(getattr(learn.dls, "blocks", ()) or ())[n_inp:]]
        moving = "/".join(sorted({str(g) for b in targets if (g := getattr(b, "geometry", None)) in _MOVING}))
        runs: list[torch.Tensor] = []
        plain_pass: list[Any] = []  # the plain pass's (preds, targs)

        def passes() -> None:
            # the plain pass: blended in or returned beside the augmented passes, and its targets are the ones returned
            # (an augmentation may change what a batch carries as its targets) and those moving targets are compared with
            learn.pass_bar = "tta plain pass"
            plain, targs = get_preds(learn, dl=dl)[:2]
            plain_pass[:] = [plain, targs]
            if moving and targs is None:
                raise ParameterError(f"tta: the model's targets are {moving}, which an augmentation may move with the "
                                     "image, and this loader carries no targets to show that it does not; use "
                                     "learn.get_preds() for these predictions")
            # the training-time batch augmentation, on the same items in the same order
            aug_dl = dl.new(shuffle=False, augment=True)
            if item_steps is not None or batch_steps is not None:
                aug_dl.batch_tfms = _tta_pipeline(learn, dl, item_steps, batch_steps)
            aug_dl.epoch = 0
            for i in range(n):  # each pass is a new epoch of aug_dl, hence new augmentation parameters
                learn.pass_bar = f"tta pass {i + 1}/{n}"
                preds, aug_targs = get_preds(learn, dl=aug_dl)[:2]
                if moving and not _same_targets(aug_targs, targs):
                    raise ParameterError(f"tta: the targets are {moving}, which the augmentation moves with the image, "
                                         "so a prediction on a flipped or warped image is not one for the original and "
                                         "cannot be averaged with it; use learn.get_preds() for these predictions, or "
                                         "batch_tfms that change lighting only")
                runs.append(preds)

        # all the passes are one validation-only pass, as in fastai: the callbacks see one before_fit ... after_fit
        with learn.removed_cbs(Recorder):
            learn.validation_pass(passes, bar="tta")
        plain, targs = plain_pass
        stacked = torch.stack(runs)
        aug = stacked.max(0).values if use_max else stacked.mean(0)
        if beta is None:
            return (aug, plain), targs
        return torch.lerp(aug, plain, beta), targs


def _tta_tfms(name: str, tfms: Any) -> list[Any] | None:
    """``tta``'s ``item_tfms``/``batch_tfms`` as batch transforms (fastai's single augmentations grouped, a class
    made with its defaults), or None when not given."""
    if tfms is None:
        return None
    steps = as_list(grouped_batch_tfms(tfms))
    wrong = [t for t in steps if not isinstance(t, BatchTransform)]
    if wrong:
        what = ("an item transform that resizes or reads each item is done once, as the items are encoded, so it "
                "cannot change per pass; give per-batch item transforms (item_tfms=FlipItem() or DihedralItem()), "
                "or build the loader with it (a DataBlock's item_tfms) and pass it as dl="
                if name == "item_tfms" else "give batch transforms such as aug_transforms(size=224)")
        raise ParameterError(f"tta: {name}={wrong[0]!r:.80} is not a batch transform; {what}")
    return steps


def _tta_pipeline(learn: Learner, dl: DataLoader, item_steps: list[Any] | None,
                  batch_steps: list[Any] | None) -> Any:
    """The batch pipeline of ``tta``'s augmented passes: the loader's own with its per-batch item transforms
    replaced by ``item_steps`` and its batch augmentations by ``batch_steps`` (None: kept). The blocks' own batch
    transforms and the conversion to float or normalisation (a step with a ``float_lut``) always stay; with
    ``item_steps`` given, the blocks' own run as on a validation batch (:class:`_AsValidation`)."""
    blocks = tuple(dl.blocks or ()) or tuple(getattr(learn.dls, "blocks", ()) or ())
    own = {type(t) for b in blocks for t in getattr(b, "batch_tfms_", ())}
    recipe = getattr(dl.dataset, "recipe", None) or getattr(learn.dls, "recipe", None)
    item_types = {type(t) for t in as_list(getattr(recipe, "item_tfms", None))}
    kept, items, augs = [], [], []
    for t in dl.batch_tfms.tfms:
        if callable(getattr(t, "float_lut", None)):
            kept.append(t)
        elif type(t) in own:  # with item_tfms given, a block's random crop (RandomResizedCrop's) is its centred one
            kept.append(t if item_steps is None else _AsValidation(t))
        elif type(t) in item_types:
            items.append(t)
        else:
            augs.append(t)
    given = [*(items if item_steps is None else item_steps), *(augs if batch_steps is None else batch_steps)]
    # a Normalize given again (fastai's tta replaces the loader's, so fastai code lists it): the loader's own is used
    theirs = {type(t): t for t in kept}
    for t in given:
        own_t = theirs.get(type(t))
        if own_t is not None and repr(own_t) != repr(t):
            warn(f"tta: {t!r:.120} in the transforms given is left out; the passes use the loader's own {own_t!r:.120}, "
                 "the statistics the model was trained with")
    return BatchPipeline([*kept, *(t for t in given if type(t) not in theirs)])


class _AsValidation(BatchTransform):
    """A batch transform run as on a validation batch whatever the loader: ``tta``'s passes with ``item_tfms``
    given keep a block's own batch transform that draws on training batches (``RandomResizedCrop``'s crop of the
    cached image) but take its validation result (the centred crop), as the item transforms it stands for are
    replaced."""

    def __init__(self, tfm: Any):
        self.tfm = tfm
        self.order = tfm.order  # type: ignore[misc]  # runs where the transform it wraps runs

    def encode(self, batch: tuple, ctx: Any) -> tuple:  # type: ignore[override]
        return self.tfm.encode(batch, dataclasses.replace(ctx, train=False))

    def decode(self, batch: tuple, ctx: Any) -> tuple:  # type: ignore[override]
        return self.tfm.decode(batch, dataclasses.replace(ctx, train=False))

    def __repr__(self) -> str:
        return f"{self.tfm!r} [as on validation batches]"


def _same_targets(a: Any, b: Any) -> bool:
    """Whether an augmented pass's targets are the plain pass's (a mask's class codes exactly, points and boxes
    to a thousandth of a pixel)."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same_targets(x, y) for x, y in zip(a, b))
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    if a.is_floating_point() or b.is_floating_point():
        return bool(torch.allclose(a.double(), b.double(), atol=1e-3, rtol=0, equal_nan=True))
    return bool(torch.equal(a, b))


def show_results(learn: Learner, ds_idx: int = 1, dl: Loader | None = None, max_n: int = 9,
                 path: str | os.PathLike | None = None, nrows: int | None = None, ncols: int | None = None,
                 figsize: tuple[float, float] | None = None, shuffle: bool = False) -> Path | None:
    """``learn.show_results``: ``max_n`` items of a batch titled "actual / predicted" (PNG when headless), in
    ``nrows`` x ``ncols`` (either one) of ``figsize``, as ``show_batch``.

    The batch is the loader's first, of its items in order (``shuffle=False``, the default, so each call shows the same
    items); ``shuffle=True`` (fastai's default) shuffles the items before taking it, as the loader's seed draws them.

    The batch goes through the learner's callbacks as in ``get_preds`` (a recurrent model's state is reset and
    its ``(logits, raw_outputs, outputs)`` taken to the logits). A language model's batch is shown as fastai
    shows it: a row per window with the columns ``input``, ``target`` (the same tokens moved on by one) and
    ``pred`` (the most likely next token at each position); ``nrows`` limits the rows, the columns are fixed.

    >>> import tempfile
    >>> from pathlib import Path
    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import Learner
    >>> from pipekit.vision import ImageDataLoaders
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    >>> learn.fit(1, 1e-2)
    >>> png = learn.show_results(max_n=4, path=Path(tempfile.mkdtemp()) / "results.png")   # headless: a PNG
    >>> png.name, png.exists()
    ('results.png', True)
    """
    check_positive_int("show_results", "max_n", max_n)
    check("show_results", shuffle=(shuffle, BOOL))
    dl = _pipekit_loader(learn._get_dl(ds_idx, dl), "show_results")
    if shuffle != dl.shuffle:
        dl = dl.new(shuffle=shuffle)
    streams = _streams(dl)
    if streams and ncols not in (None, 3):
        raise ParameterError(f"show_results: a language model's results are shown in 3 columns (input, target, "
                             f"pred), got ncols={ncols}")
    if streams and nrows is not None:
        check_positive_int("show_results", "nrows", nrows)
        max_n = min(max_n, nrows)
    batch = batch_parts(dl)
    n_inp = dl.n_inp
    n = min(max_n, len(batch[0]))
    batch = tuple(b[:n] for b in batch)
    outputs, _, dec = get_preds(learn, dl=GivenBatches([batch], n_inp), with_decoded=True)
    blocks = dl.blocks or learn.dls.blocks
    if streams:
        if isinstance(dec, torch.Tensor) and dec.is_floating_point():
            dec = dec.float()
        return _show_lm_results(dl.decode_batch(batch, max_n=n), [blocks[0].decode(d) for d in dec], blocks[0],
                                path, figsize)
    preds = shown_predictions(learn, dl, batch[:n_inp], outputs, dec)
    several = isinstance(getattr(learn.dls, "c", None), list)
    if several:  # the model's targets, which a loader of new items without labels does not carry
        blocks = (*tuple(blocks)[:n_inp], *tuple(learn.dls.blocks)[n_inp:])
    return show_items(dl.decode_batch(batch, max_n=n), blocks, n_inp, preds=preds, path=path, name="show_results",
                      nrows=nrows, ncols=ncols, figsize=figsize, per_target=several)


def shown_predictions(learn: Learner, dl: DataLoader, inputs: Any, outputs: Any, decoded: Any) -> list[Any]:
    """Each item's prediction as ``learn.show_results`` shows it, for a batch of ``dl``'s items whose ``inputs``
    (one tensor or list of rows, or a tuple of them), model ``outputs`` and loss-decoded predictions ``decoded``
    ``get_preds`` gave: for data of several targets, one per target, each read from its own slice of the
    ``outputs``; for a loader without blocks, the loader's decoding of ``decoded`` (see :func:`decoded_by_loader`);
    else the target block's decoding of each of ``decoded`` (see :func:`label_scores`), or the decoded tensor
    itself when the loader names no target. A :class:`ParameterError` when the outputs cannot be read as several
    targets side by side.

    >>> # preds = shown_predictions(learn, dl, batch[:dl.n_inp], outputs, decoded)   # show_items(..., preds=preds)
    """
    if isinstance(getattr(learn.dls, "c", None), list):
        return _several_targets_shown(learn.dls, outputs)
    if isinstance(decoded, torch.Tensor) and decoded.is_floating_point():
        decoded = decoded.float()
    one = isinstance(inputs, tuple) and len(inputs) == 1
    by_loader = decoded_by_loader(learn, dl, inputs[0] if one else inputs, decoded)
    if by_loader is not None:  # no blocks: the loader decodes the predictions as it decodes its targets
        return by_loader
    blocks, n_inp = dl.blocks or learn.dls.blocks, dl.n_inp
    y_block = blocks[n_inp] if len(blocks) > n_inp else None
    return [y_block.decode(label_scores(learn.loss_func, y_block, d)) if y_block is not None else d for d in decoded]


def _several_targets_shown(dls: Any, outputs: Any) -> list[tuple[Any, ...]]:
    """Each item's predictions for data of several targets, one per target (see :func:`_decode_targets`), or a
    :class:`ParameterError` saying why the model's outputs cannot be read as the targets' side by side."""
    width = outputs.shape[-1] if isinstance(outputs, torch.Tensor) and outputs.ndim == 2 else None
    parts = _target_slices(dls, width) if width is not None else None
    if parts is None:
        raise _several_targets_unread("show_results", dls, outputs, "show the predictions of learn.get_preds() "
                                      "yourself")
    return [_decode_targets(parts, row, lambda b, d: b.decode(d))[0] for row in outputs]


def _several_targets_unread(who: str, dls: Any, outputs: Any, instead: str) -> ParameterError:
    """The error of ``who`` (``show_results``, ``predict``) on data of several targets whose predictions cannot be
    read from the model's ``outputs`` (a batch of them): a target naming no ``loss_kind``, or outputs that are not
    the targets' side by side (``n_out=sum(dls.c)``); ``instead`` says what to do in its place."""
    targets = list(tuple(getattr(dls, "blocks", ()) or ())[getattr(dls, "n_inp", 1):])
    shown = ", ".join(type(b).__name__ for b in targets)
    plain = [type(b).__name__ for b in targets if getattr(b, "loss_kind", None) is None]
    if plain:
        why = f"{', '.join(plain)} names no loss_kind, so pipekit cannot read its prediction from the outputs"
    else:
        shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
        why = (f"the model's outputs (shape {shape}) are not their outputs side by side "
               f"({sum(s or 0 for s in dls.c)} per item, each target's in target order), from which each "
               "target's prediction is read; build the model with n_out=sum(dls.c)")
    verb = "show" if who == "show_results" else "read"
    return ParameterError(f"{who} cannot {verb} this learner's predictions: the data has {len(targets)} targets "
                          f"({shown}) of sizes {dls.c}, and {why}. To use this model as it is, {instead}")


def _show_lm_results(rows: Sequence[tuple], preds: Sequence[str], block: Any, path: str | os.PathLike | None,
                     figsize: tuple[float, float] | None) -> Path | None:
    """A language model's windows beside their targets and predicted tokens: a table in a notebook, as fastai's
    (columns ``input``, ``target``, ``pred``), else a figure of those three columns."""
    from pipekit.data.plotting import get_pyplot, plot_mode, savefig_or_show, show_text_table
    from pipekit.data.show import CELL_INCHES

    columns = {"input": [str(r[0]) for r in rows], "target": [str(r[1]) for r in rows], "pred": [str(p) for p in preds]}
    if path is None and plot_mode() == "inline":
        show_text_table(columns)
        return None
    fig, axes = get_pyplot().subplots(len(rows), 3, squeeze=False, layout="constrained",
                                      figsize=figsize or (6 * CELL_INCHES, 0.6 * CELL_INCHES * len(rows)))
    for j, (name, values) in enumerate(columns.items()):
        for i, value in enumerate(values):
            block.show(axes[i, j], value, name if i == 0 else None)
    return savefig_or_show(fig, path, name="show_results")
