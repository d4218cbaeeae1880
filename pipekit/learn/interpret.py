"""Where a classifier goes wrong: confusion matrix, most confused pairs, top losses, classification report.

>>> # interp = ClassificationInterpretation.from_learner(learn)
>>> # interp.most_confused(min_val=2); interp.plot_confusion_matrix(); interp.plot_top_losses(9)
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipekit.core.errors import DataError, ParameterError
from pipekit.core.protocols import Loader
from pipekit.core.validate import Interval, Is, check, check_arguments
from pipekit.data.blocks import TransformBlock
from pipekit.data.dataloaders import ItemList, classes_vocab
from pipekit.data.loader import DataLoader, item_positions
from pipekit.data.plotting import draw_image, get_pyplot, grid_shape, savefig_or_show, show_table, tensor_image
from pipekit.data.show import are_table_rows, rows_table, show_items, title_chars, title_text
from pipekit.learn.inference import decoded_by_loader, label_scores, loss_methods, shown_predictions
from pipekit.learn.losses import MSELossFlat, kept_positions

if TYPE_CHECKING:
    from pipekit.learn.learner import Learner

__all__ = ["Interpretation", "ClassificationInterpretation", "SegmentationInterpretation"]


#: the arguments a plot takes in fastai's order; a file given in their place is meant for ``path=``
_LARGEST = Is(lambda v: isinstance(v, (bool, np.bool_)), "True or False (fastai's second argument: the largest losses "
                                                          "or the smallest); a file to save to goes by name: path=...")
_FLAG = Is(lambda v: isinstance(v, (bool, np.bool_)), "True or False")
#: how many top losses to plot (a 0-d tensor or array counts as the number it holds)
_TOP_K = Interval(1, None, integer=True, why="how many of the losses to show; or the ranks to show, a list, range or "
                                              "1-D tensor of them")
#: what ``Interpretation.show_results`` passes on to the drawing, as ``learn.show_results`` takes them
_SHOW_RESULTS_ARGS = ("path", "nrows", "ncols", "figsize")
_TITLE = Is(lambda v: isinstance(v, str), "the figure's title, a str (fastai's second argument); a file to save to goes "
                                          "by name: path=...")


def _classifies(learn: Learner) -> bool:
    """Whether the learner's targets are classes: labels, label sets or a class per pixel."""
    y_block = getattr(learn.dls, "y_block", None)
    return getattr(y_block, "vocab", None) is not None or getattr(learn.dls, "loss_kind", None) == "pixel_cross_entropy"


def _predicts_numbers(learn: Learner) -> bool:
    """Whether the learner's targets are numbers (a ``RegressionBlock``'s, points): by the data's target, or for
    loaders that name none, by the loss."""
    kind = getattr(learn.dls, "loss_kind", None)
    if kind is not None:
        return kind == "mse"
    return isinstance(learn.loss_func, (MSELossFlat, torch.nn.MSELoss, torch.nn.L1Loss))


def _one_target_only(who: str, learn: Learner, targets: list[Any]) -> ParameterError:
    """Why ``who`` (a classifier's interpretation) refuses data of several targets, and what to use instead."""
    shown = ", ".join(type(b).__name__ + (f" {list(b.vocab)[:5]}" if b.vocab is not None else "") for b in targets)
    sizes = getattr(learn.dls, "c", None)
    first = sizes[0] if isinstance(sizes, list) and isinstance(sizes[0], int) else None
    args = ", ".join(f"y{i}" for i in range(len(targets)))
    example = (f"; for the first target's, if its outputs come first: preds, ({args}) = learn.get_preds(), then "
               f"sklearn.metrics.confusion_matrix(y0, preds[:, :{first}].argmax(1))" if first else "")
    return ParameterError(f"{who} takes one target, and this learner's data has {len(targets)} ({shown}): which of "
                          "the model's outputs are a target's classes is known to its loss function alone. "
                          "Interpretation.from_learner(learn) ranks the items by that loss (top_losses, "
                          f"plot_top_losses) when it takes reduction='none'{example}")


def _scores_per_class(preds: Any, targs: Any, decoded: Any) -> bool:
    """Whether ``preds`` are a classifier's scores that its loss left undecoded (``decoded`` has their shape): more
    than one score per item on dim 1 (per pixel too, a mask's), and ``targs`` one integer class id per item (or
    pixel). A regression's one output per item (whole-number targets, counts, included) is not.

    >>> import torch
    >>> scores, targs = torch.randn(4, 3), torch.tensor([0, 2, 1, 2])
    >>> _scores_per_class(scores, targs, scores), _scores_per_class(scores[:, :1], targs, scores[:, :1])
    (True, False)
    """
    if not (isinstance(preds, torch.Tensor) and isinstance(targs, torch.Tensor) and isinstance(decoded, torch.Tensor)):
        return False
    return (decoded.shape == preds.shape and preds.ndim == targs.ndim + 1 and preds.shape[1] > 1
            and not targs.is_floating_point() and targs.dtype != torch.bool)


def _take(x: Any, at: torch.Tensor) -> Any:
    """The items at the positions ``at`` of a set's inputs, predictions, targets or decoded predictions: a tensor's
    rows, a list's entries (rows of padded texts), each part of a tuple (several inputs or targets)."""
    if x is None:
        return None
    if isinstance(x, tuple):
        return tuple(_take(o, at) for o in x)
    if isinstance(x, torch.Tensor):
        return x[at.to(x.device)]
    return [x[i] for i in at.tolist()]


def _parts(x: Any) -> tuple[Any, ...]:
    """A batch's inputs or targets as a tuple of its parts: one tensor (or list of rows) as a tuple of one."""
    return x if isinstance(x, tuple) else (x,)


def _repeat_first(x: Any, n: int) -> Any:
    """The first item of a batch's part (a tensor, or a list of rows) ``n`` times, as a part of ``n`` items."""
    if isinstance(x, torch.Tensor):
        return x[:1].repeat(n, *[1] * (x.ndim - 1))
    return [x[0]] * n


class Interpretation:
    """Inputs, predictions, targets, decoded predictions and per-item losses over one set.

    Example:
    >>> import torch
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Interpretation, Learner, MSELossFlat
    >>> x = torch.randn(32, 4); ds = list(zip(x, x.sum(1, keepdim=True)))     # a regression: y = sum of x
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 1), loss_func=MSELossFlat())
    >>> interp = Interpretation.from_learner(learn)
    >>> interp
    Interpretation(32 items, mean loss ...)
    >>> losses, idxs = interp.top_losses(3)                     # the 3 worst items and their positions
    >>> torch.equal(losses, interp.losses[idxs]), tuple(interp.preds.shape), tuple(interp.targs.shape)
    (True, (32, 1), (32, 1))
    """

    def __init__(self, learn: Learner, dl: Loader, inputs: Any, preds: torch.Tensor, targs: torch.Tensor,
                 decoded: torch.Tensor, losses: torch.Tensor):
        self.learn, self.dl, self.inputs, self.preds = learn, dl, inputs, preds
        self.targs, self.decoded, self.losses = targs, decoded, losses

    def __repr__(self) -> str:
        vocab, c = classes_vocab(self.learn.dls), getattr(self.learn.dls, "c", None)
        classes = (f", {len(c)} targets" if isinstance(c, list)  # several targets: a vocab and a size per target
                   else f", {len(vocab)} classes" if isinstance(vocab, (list, tuple)) else "")
        loss = f", mean loss {float(self.losses.float().mean()):.4f}" if len(self.losses) else ""
        return f"{type(self).__name__}({len(self.losses)} items{classes}{loss})"

    @classmethod
    def from_learner(cls, learn: Learner, ds_idx: int = 1, dl: Loader | None = None,
                     act: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Interpretation:
        """Run ``learn.get_preds`` over a labelled set (default: validation) and keep everything needed."""
        if issubclass(cls, ClassificationInterpretation) and _predicts_numbers(learn):
            names = getattr(learn.dls, "y_names", None)
            what = f" ({', '.join(map(str, names))})" if names else ""
            raise ParameterError(f"{cls.__name__} needs a classifier; this learner predicts numbers{what}: use "
                                 "Interpretation.from_learner(learn).top_losses() or .plot_top_losses(k)")
        from pipekit.learn.learner import several_targets

        targets = several_targets(learn.dls)
        if targets and issubclass(cls, ClassificationInterpretation):
            raise _one_target_only(cls.__name__, learn, targets)
        given = dl is not None
        dl = learn._get_dl(ds_idx, dl)
        n_items = getattr(dl, "n", None)  # a pipekit loader's number of items; a foreign loader's is not known
        if not given and ds_idx == 1 and n_items == 0:
            raise DataError(f"{cls.__name__}.from_learner: the validation set is empty (the model trained on every "
                            "item, as RandomSplitter(valid_pct=0) or Tabular(splits=None) give), so there is nothing "
                            "to interpret; pass ds_idx=0 for the training items or dl=learn.dls.test_dl(items, "
                            "with_labels=True) for labelled new ones")
        inputs, preds, targs, decoded, losses = learn.get_preds(dl=dl, with_input=True, with_decoded=True,
                                                                with_loss=True, act=act)
        if targs is None:
            raise DataError("Interpretation needs labelled data; the loader has no targets "
                             "(use dls.test_dl(items, with_labels=True))")
        if cls is Interpretation and _classifies(learn) and not targets:  # fastai's, on a classifier
            cls = ClassificationInterpretation
        if _scores_per_class(preds, targs, decoded):
            # a loss that decodes nothing (torch's nn.CrossEntropyLoss): one score per class, on dim 1 as the loss
            # takes them (an image's pixels too), and a class index per target: the decoded class is the largest,
            # and the probabilities the softmax of the scores, where get_preds applied no activation (none given
            # with act=, and none of the loss's own, as a loss class with an activation but no decodes has)
            decoded = preds.argmax(1)
            if act is None and loss_methods(learn.loss_func)[0] is None and preds.is_floating_point():
                preds = preds.softmax(1)
        elif isinstance(decoded, torch.Tensor) and decoded.is_floating_point():
            # multi-label outputs of a loss that decodes nothing (torch's nn.BCEWithLogitsLoss): labels over 0.5 of
            # their probabilities, as predict reads them
            y_block = getattr(learn.dls, "y_block", None)
            scores = label_scores(learn.loss_func, y_block, decoded)
            if getattr(y_block, "loss_kind", None) == "bce":
                decoded = scores > 0.5
        return cls(learn, dl, inputs, preds, targs, decoded, losses)

    def top_losses(self, k: int | None = None, largest: bool = True, items: bool = False) -> tuple[Any, ...]:
        """The ``k`` largest (or smallest) per-item losses and the item indices, sorted; with ``items=True``, the
        loader's items at those indices too (fastai's ``losses, idxs, items``: the files or values the set was made
        of; for a set made of a table's rows, those rows of the items table pipekit built from it, as a Polars
        DataFrame in the order of the losses: ``items.to_pandas()`` for a pandas frame).

        >>> # losses, idxs, items = interp.top_losses(3, items=True)   # items[0]: the file of the worst loss
        """
        n = len(self.losses)
        k = n if k is None else k
        k = check("top_losses", k=(k, Interval(1, n, integer=True)), items=(items, _FLAG))["k"]
        losses, idxs = self.losses.topk(k, largest=largest)
        return (losses, idxs, self._items_at(idxs)) if items else (losses, idxs)

    def _items_at(self, idxs: torch.Tensor) -> Any:
        """The loader's items at the positions ``idxs``: rows of a table as a frame, else a list."""
        import polars as pl

        items = getattr(self.dl, "items", None)
        if items is None:
            raise DataError(f"top_losses(items=True): this loader ({type(self.dl).__name__}) has no items to give (a "
                            "set built from arrays or tensors); the indices the top losses return pick the inputs: "
                            "interp[idxs]")
        pos = [int(i) for i in idxs.tolist()]
        if hasattr(items, "iloc"):
            return items.iloc[pos]
        if isinstance(items, pl.DataFrame):
            return items[pos]
        if isinstance(items, ItemList) and items.frame.width > 1:  # a DataBlock's items: rows of its items table
            return items.frame[items.rows[pos]]
        return [items[i] for i in pos]

    def _positions(self, idxs: Any, what: str) -> torch.Tensor:
        """``idxs`` (an int, or a list, range, array or tensor of ints) as a 1-D tensor of positions in ``range(n)``
        (negative ones counting from the end, as a list's do), ``n`` the number of items, read as the loaders read
        an index (:func:`~pipekit.data.loader.item_positions`); ``what`` names them in the ParameterError of any
        other index or of a position out of range."""
        n = len(self.losses)
        try:
            at = item_positions(idxs, n, "this interpretation")
        except IndexError as e:
            raise ParameterError(f"{what}: {e} (0 to {n - 1}, or negative from the end)") from None
        except ParameterError as e:
            raise ParameterError(f"{what}: {e}") from None
        return torch.as_tensor(np.atleast_1d(at), dtype=torch.int64)

    def __getitem__(self, idxs: Any) -> tuple[Any, Any, Any, Any, torch.Tensor]:
        """The inputs, predictions, targets, decoded predictions and losses of the items at ``idxs`` (an index, or
        a list, range, array or tensor of them), each a batch of those items, as fastai's ``interp[idxs]`` gives
        them: ``inps, preds, targs, decoded, losses = interp[idxs]``."""
        at = self._positions(idxs, "interp[idxs]: the indices")
        return (_take(self.inputs, at), _take(self.preds, at), _take(self.targs, at), _take(self.decoded, at),
                self.losses[at])

    def _title(self, i: int, loss: float) -> str:
        """The title of item ``i`` in ``plot_top_losses``."""
        if not isinstance(self.targs, torch.Tensor):  # several targets (a tuple of them): the loss alone
            return f"{loss:.2f}"
        pred, targ = self.decoded[i], self.targs[i]
        if pred.numel() == 1 and targ.numel() == 1:  # one value each (a regression): predicted / actual / loss
            return f"{float(pred):.3g}/{float(targ):.3g} / {loss:.2f}"
        return f"{loss:.2f}"

    def _suptitle(self) -> str:
        return "predicted / actual / loss" if isinstance(self.targs, torch.Tensor) and \
            self.decoded[0].numel() == 1 == self.targs[0].numel() else "loss"

    def plot_top_losses(self, k: int | Sequence[int] | range = 9, largest: bool = True, *,
                        path: str | os.PathLike | None = None,
                        nrows: int | None = None, ncols: int | None = None,
                        figsize: tuple[float, float] | None = None) -> Path | None:
        """The items with the largest losses, each titled with its loss (and, for a classifier, predicted / actual
        / probability: see :class:`ClassificationInterpretation`), in ``nrows`` x ``ncols`` (either one; the book's
        ``plot_top_losses(5, nrows=1)``) of ``figsize``; inline in a notebook, PNG when headless.

        Rows of a table (tabular and collaborative-filtering loaders) are shown as ``learn.show_results`` shows
        them: a table of the decoded rows, a column per input column, then the target, the prediction, the
        ``loss`` and (a single-label classifier) the ``probability`` of the prediction, in loss order (``nrows``,
        ``ncols`` and ``figsize`` shape grids of pictures only). A segmentation model's items are laid out as
        fastai lays them out, a row per item: the input, the target and the prediction, the masks drawn over the
        input as ``learn.show_results`` draws them, the prediction titled with the share of pixels predicted right
        (of those the loss reads: pixels of its ``ignore_index``, a void class, or of a class weighted 0 left
        out) and the loss (``figsize`` sizes the figure; the grid is always ``k`` rows of 3, so ``nrows`` and
        ``ncols`` change nothing there, as in fastai). ``k`` and ``largest`` come first, as in fastai's
        ``plot_top_losses(k, largest)``; the rest are keywords (``path=``: the PNG file, when headless). As in
        fastai, ``k`` may also be the ranks to show, a list or range of them: ``plot_top_losses(range(9, 18))`` shows
        the 10th to 18th largest losses."""
        check("plot_top_losses", largest=(largest, _LARGEST))
        if isinstance(k, (list, tuple, range)) or isinstance(k, (np.ndarray, torch.Tensor)) and k.ndim == 1:
            # ranks among all the losses, sorted
            ranks = self._positions(k, "plot_top_losses: the ranks k")
            if not len(ranks):
                raise ParameterError("plot_top_losses: k is an empty list of ranks; give the ranks to show "
                                     "(range(9) for the 9 largest losses) or how many, k=9")
            losses, idxs = (o[ranks] for o in self.top_losses(None, largest=largest))
        else:
            count = check("plot_top_losses", k=(k, _TOP_K))["k"]  # a 0-d tensor as the int it holds
            losses, idxs = self.top_losses(min(count, len(self.losses)), largest=largest)
        table = self._table_loader()
        if table is not None:
            return self._show_top_rows(table, losses, idxs, path)
        masks = self._mask_loader()
        if masks is not None:
            return self._show_top_masks(masks, losses, idxs, path, figsize)
        plt = get_pyplot()
        nrows, ncols = grid_shape(max(1, len(idxs)), nrows, ncols)
        size = figsize or (3 * ncols, 3 * nrows)
        fig, axs = plt.subplots(nrows, ncols, figsize=size, squeeze=False, layout="constrained")
        for ax in axs.flat[len(idxs):]:
            ax.axis("off")
        width = title_chars(size[0] / ncols)
        for ax, loss, i in zip(axs.flat, losses.tolist(), idxs.tolist()):
            self._show_input(ax, i, title_text([self._title(i, loss)], width))
        fig.suptitle(self._suptitle())
        return savefig_or_show(fig, path, name="top_losses")

    def _table_loader(self) -> DataLoader | None:
        """The loader when its items are rows of a table (every input's block decodes to columns,
        ``table_columns``), else None."""
        if not isinstance(self.dl, DataLoader):
            return None
        return self.dl if are_table_rows(self._blocks(self.dl), self.dl.n_inp) else None

    def _extra_columns(self, losses: torch.Tensor, idxs: torch.Tensor) -> dict[str, list[float]]:
        """The columns after the prediction in a table of top losses."""
        return {"loss": [round(v, 4) for v in losses.tolist()]}

    def _show_top_rows(self, dl: DataLoader, losses: torch.Tensor, idxs: torch.Tensor,
                       path: str | os.PathLike | None) -> Path | None:
        # the rows decoded and tabled as show_results tables them, with the loss columns after the prediction
        import polars as pl

        n_inp = dl.n_inp
        batch = (*_parts(_take(self.inputs, idxs))[:n_inp], *_parts(_take(self.targs, idxs)))
        frame = rows_table(dl.decode_batch(batch), self._blocks(dl), n_inp, self._shown_preds(dl, idxs))
        frame = frame.with_columns(**{name: pl.Series(name, values, dtype=pl.Float64)
                                      for name, values in self._extra_columns(losses, idxs).items()})
        return show_table(frame, path, name="top_losses")

    def _mask_loader(self) -> DataLoader | None:
        """The loader when each item is one image with a mask as its target (a segmentation model's), else None."""
        if not isinstance(self.dl, DataLoader) or not isinstance(self.targs, torch.Tensor):
            return None
        blocks, n_inp = self._blocks(self.dl), self.dl.n_inp
        if n_inp != 1 or len(blocks) != 2 or getattr(blocks[0], "geometry", None) != "image":
            return None
        return self.dl if getattr(blocks[1], "geometry", None) == "mask" else None

    def _blocks(self, dl: Loader) -> tuple:
        """The blocks that decode and show the items of ``dl``: its own, else (a loader whose items name none, or
        one pipekit did not build) the learner's data's."""
        return (dl.blocks if isinstance(dl, DataLoader) else ()) or self.learn.dls.blocks

    def _shown_preds(self, dl: DataLoader, at: torch.Tensor) -> list[Any]:
        """The predictions of the items at the positions ``at`` as ``learn.show_results`` shows them (see
        :func:`~pipekit.learn.inference.shown_predictions`)."""
        return shown_predictions(self.learn, dl, _take(self.inputs, at), _take(self.preds, at),
                                 _take(self.decoded, at))

    def _show_top_masks(self, dl: DataLoader, losses: torch.Tensor, idxs: torch.Tensor,
                        path: str | os.PathLike | None, figsize: tuple[float, float] | None) -> Path | None:
        # a row per item (whatever nrows and ncols were given): the input, the target mask over it, the predicted
        # mask over it titled with the loss; the image and the masks drawn by their blocks, as learn.show_results
        # draws them
        n = len(idxs)
        image_block, mask_block = self._blocks(dl)
        rows = dl.decode_batch((*_parts(_take(self.inputs, idxs)), *_parts(_take(self.targs, idxs))), max_n=n)
        preds = self._shown_preds(dl, idxs)
        plt = get_pyplot()
        size = figsize or (9, 3 * n)
        fig, axs = plt.subplots(n, 3, figsize=size, squeeze=False, layout="constrained")
        width = title_chars(size[0] / 3)
        for ax, row, pred, loss, i in zip(axs, rows, preds, losses.tolist(), idxs.tolist()):
            image_block.show(ax[0], row[0], title="input")
            image_block.show(ax[1], row[0])
            mask_block.show(ax[1], row[1], title="target")
            image_block.show(ax[2], row[0])
            mask_block.show(ax[2], pred, title=title_text([self._title(i, loss)], width))
        fig.suptitle(f"input / target / prediction: {self._suptitle()}")
        return savefig_or_show(fig, path, name="top_losses")

    def show_results(self, idxs: Any, **kwargs: Any) -> Path | None:
        """The items at the positions ``idxs`` (an index, or a list, range, array or tensor of them, as
        :meth:`top_losses` gives them) with their targets and predictions, drawn as ``learn.show_results`` draws a
        batch: labels titled "actual / predicted", masks and points as a target and a prediction side by side, a
        table's rows as a table. ``kwargs``: ``path`` (the PNG, when headless), ``nrows``, ``ncols``, ``figsize``, as
        ``learn.show_results`` takes them.

        >>> # losses, idxs = interp.top_losses(4); interp.show_results(idxs)
        """
        check_arguments("show_results", kwargs, _SHOW_RESULTS_ARGS)
        at = self._positions(idxs, "show_results: the indices")
        if not len(at):
            raise ParameterError("show_results: idxs is empty; give the positions of the items to show, e.g. "
                                 "interp.show_results([0, 1]) or interp.show_results(interp.top_losses(4)[1])")
        dl = self.dl
        if not isinstance(dl, DataLoader):
            raise ParameterError(f"show_results needs a pipekit DataLoader to decode the items, and this "
                                 f"interpretation's is a {type(dl).__name__}; interp[idxs] gives their inputs, "
                                 "predictions and targets")
        batch = (*_parts(_take(self.inputs, at)), *_parts(_take(self.targs, at)))
        return show_items(dl.decode_batch(batch, max_n=len(at)), self._blocks(dl), dl.n_inp,
                          preds=self._shown_preds(dl, at), name="show_results",
                          per_target=isinstance(getattr(self.learn.dls, "c", None), list), **kwargs)

    def _show_input(self, ax: Any, i: int, title: str) -> None:
        # one input: a tensor, or a list of rows when batches differ in length (padded texts); several: a tuple
        x = self.inputs[0][i] if isinstance(self.inputs, tuple) else self.inputs[i]
        blocks = self._blocks(self.dl)
        if blocks and isinstance(self.dl, DataLoader) and type(blocks[0]).show is not TransformBlock.show:
            with contextlib.suppress(Exception):  # an input its block cannot draw: drawn as a tensor below
                blocks[0].show(ax, self.dl.decode_batch((x[None],), max_n=1)[0][0], title=title)
                return
        ax.axis("off")
        arr = x.detach().float().cpu()
        if arr.ndim == 1 and int(np.sqrt(arr.numel())) ** 2 == arr.numel():  # flattened square image
            arr = arr.reshape(int(np.sqrt(arr.numel())), -1)
        img = tensor_image(arr)
        if img is not None:
            draw_image(ax, img)
        else:
            ax.text(0.5, 0.5, str(arr.tolist())[:120], ha="center", va="center", wrap=True)
        ax.set_title(title, fontsize=8)


class ClassificationInterpretation(Interpretation):
    """Interpretation for classifiers; class names come from the target's vocab (``dls.y_block.vocab``: a text
    classifier's ``dls.vocab`` is ``[tokens, classes]``; for the loaders of a ``Datasets``' or
    ``TfmdLists``' items, which have no blocks, from the loader's decoding of each class, see :attr:`vocab`).

    A multi-label model (``MultiCategoryBlock``: targets of 0/1 per label) has no confusion matrix between
    classes: ``confusion_matrix``, ``most_confused`` and ``plot_confusion_matrix`` refuse it, while
    ``classification_report`` gives each label's precision and recall and ``plot_top_losses`` titles each item
    with its predicted and actual label sets.

    Example:
    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import ClassificationInterpretation, Learner, accuracy
    >>> from pipekit.vision import ImageDataLoaders, Resize
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2)), metrics=accuracy)
    >>> learn.fit_one_cycle(1, 1e-3)
    >>> interp = ClassificationInterpretation.from_learner(learn)
    >>> interp.vocab, interp.confusion_matrix().shape, int(interp.confusion_matrix().sum()) == len(dls.valid_ds)
    (['3', '7'], (2, 2), True)
    >>> losses, idxs = interp.top_losses(3)
    >>> bool(losses[0] >= losses[1] >= losses[2])
    True
    """

    @property
    def multi_label(self) -> bool:
        """True when each target is a 0/1 vector over the labels (a ``MultiCategoryBlock``, whose loss is 'bce'); for
        loaders that name no target, float targets shaped like the predictions."""
        kind = getattr(self.learn.dls, "loss_kind", None)
        if kind is not None:
            return bool(kind == "bce")
        return self.targs.ndim == 2 and self.targs.shape == self.preds.shape and self.targs.is_floating_point()

    def _single_label(self, what: str) -> None:
        if self.multi_label:
            raise ParameterError(f"{what}: a multi-label model's items may have any number of labels, so there is no "
                                 f"confusion between one actual and one predicted class; use "
                                 f"interp.print_classification_report() (precision and recall per label), "
                                 f"interp.plot_top_losses(k) or learn.show_results()")

    def _labels(self, row: torch.Tensor) -> str:
        v = self.vocab
        return ";".join(str(v[j]) for j in torch.nonzero(row.reshape(-1) > 0.5).reshape(-1).tolist()) or "(none)"

    @property
    def per_pixel(self) -> bool:
        """True for a segmentation model: a class per pixel, the classes on axis 1 of the ``(n, classes, h, w)``
        predictions; the confusion matrix and report count pixels."""
        return getattr(self.learn.dls, "loss_kind", None) == "pixel_cross_entropy"

    @property
    def vocab(self) -> list:
        """The class names: the target block's vocab; for a loader without blocks (a ``Datasets``' or ``TfmdLists``'
        items), each class as the loader decodes it (see :meth:`_loader_classes`); else the class indices as text."""
        y_block = self.learn.dls.y_block
        v = y_block.vocab if y_block is not None else None
        n = self.preds.shape[1] if self.per_pixel else self.preds.shape[-1]
        if v is None:
            v = self._loader_classes(n)
        return list(v) if v is not None and len(v) == n else [str(i) for i in range(n)]

    def _loader_classes(self, n: int) -> list | None:
        """The ``n`` classes of a loader without blocks, each decoded by the loader as a prediction of it (fastai's
        ``dl.decode_batch``, see :func:`~pipekit.learn.inference.decoded_by_loader`) after the first item's input: the
        ``Categorize`` of a ``Datasets`` gives its labels (``['3', '7']``), a one-hot target's encoding the label of
        each one-hot row. None when the loader has blocks or decodes a class to no label (a number, a tensor). Decoded
        once, as the titles of every top loss read them."""
        cached = self.__dict__.get("_classes_by_loader")
        if cached is not None and cached[0] == n:
            return cached[1]
        if self.inputs is None or not len(self.losses):  # no item's input to decode the classes after
            return None
        if isinstance(self.inputs, tuple):
            first = tuple(_repeat_first(x, n) for x in self.inputs)
        else:
            first = _repeat_first(self.inputs, n)
        codes = torch.eye(n, dtype=self.targs.dtype) if self.multi_label else torch.arange(n)
        labels = decoded_by_loader(self.learn, self.dl, first, codes)
        if labels is not None:
            labels = [v[0] if isinstance(v, (list, tuple)) and len(v) == 1 else v for v in labels]
            if any(isinstance(v, (torch.Tensor, np.ndarray, list, tuple)) for v in labels):
                labels = None
        self.__dict__["_classes_by_loader"] = (n, labels)
        return labels

    def confusion_matrix(self) -> np.ndarray:
        """Counts ``[actual, predicted]`` over the set (single-label models)."""
        self._single_label("confusion_matrix")
        n = len(self.vocab)
        t = self.targs.reshape(-1).long().numpy()
        d = self.decoded.reshape(-1).long().numpy()
        return np.bincount(t * n + d, minlength=n * n).reshape(n, n)

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        """(actual, predicted, count) for off-diagonal cells with at least ``min_val`` items, most first."""
        self._single_label("most_confused")
        cm = self.confusion_matrix()
        v = self.vocab
        pairs = [(v[i], v[j], int(cm[i, j])) for i in range(len(v)) for j in range(len(v))
                 if i != j and cm[i, j] >= min_val]
        return sorted(pairs, key=lambda p: -p[2])

    def plot_confusion_matrix(self, normalize: bool = False, title: str = "Confusion matrix", cmap: str = "Blues",
                              norm_dec: int = 2, plot_txt: bool = True, *, path: str | os.PathLike | None = None,
                              **fig_kwargs: Any) -> Path | None:
        """Draw the confusion matrix (PNG when headless, to ``path=``, a keyword); ``fig_kwargs`` (``figsize``,
        ``dpi``) go to the figure, as in the book's ``plot_confusion_matrix(figsize=(12, 12), dpi=60)``;
        ``plot_txt=False`` leaves the counts out of the cells, as fastai's does. The other arguments are fastai's, in
        its order: ``plot_confusion_matrix(True, "My title")`` is normalised and titled."""
        check("plot_confusion_matrix", title=(title, _TITLE))
        self._single_label("plot_confusion_matrix")
        cm = self.confusion_matrix().astype(float)
        if normalize:
            cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        v = self.vocab
        plt = get_pyplot()
        size = max(4, 0.6 * len(v))
        fig, ax = plt.subplots(**{"figsize": (size, size), **fig_kwargs})
        ax.imshow(cm, cmap=cmap)
        ax.set_xticks(range(len(v)), v, rotation=90)
        ax.set_yticks(range(len(v)), v)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        thresh = cm.max() / 2 if cm.size else 0
        for i in range(len(v) if plot_txt else 0):
            for j in range(len(v)):
                ax.text(j, i, f"{cm[i, j]:.{norm_dec}f}" if normalize else f"{int(cm[i, j])}", ha="center",
                        va="center", color="white" if cm[i, j] > thresh else "black",
                        fontsize=12 if len(v) <= 6 else 8)
        ax.set_title(title)
        return savefig_or_show(fig, path, name="confusion_matrix")

    def _title(self, i: int, loss: float) -> str:
        # titled predicted / actual / loss / probability, the model's confidence in its prediction (as the book
        # reads it); a multi-label model's label sets, a mask's share of pixels predicted right
        if self.multi_label:
            return f"{self._labels(self.decoded[i])}/{self._labels(self.targs[i])} / {loss:.2f}"
        if self.per_pixel:  # the share of the pixels the loss reads (kept_positions: void pixels left out)
            right, kept = self.decoded[i] == self.targs[i], kept_positions(self.learn.loss_func, self.targs[i])
            if kept is not None:
                right = right[kept]
            if not right.numel():
                return f"no pixel kept / {loss:.2f}"
            return f"{float(right.float().mean()):.0%} of pixels / {loss:.2f}"
        v = self.vocab
        actual, predicted = int(self.targs[i]), int(self.decoded[i])
        return f"{v[predicted]}/{v[actual]} / {loss:.2f} / {float(self.preds[i, predicted]):.2f}"

    def _extra_columns(self, losses: torch.Tensor, idxs: torch.Tensor) -> dict[str, list[float]]:
        # a single-label classifier's confidence in its prediction, as its titles give it
        columns = super()._extra_columns(losses, idxs)
        if not (self.multi_label or self.per_pixel):
            probs = self.preds[idxs].gather(1, self.decoded[idxs].long().reshape(-1, 1)).reshape(-1)
            columns["probability"] = [round(v, 4) for v in probs.float().tolist()]
        return columns

    def _suptitle(self) -> str:
        return "pixels right / loss" if self.per_pixel else \
            "predicted / actual / loss" + ("" if self.multi_label else " / probability")

    def classification_report(self) -> str:
        """Precision, recall and F1 per class (sklearn's report), as text; per label for a multi-label model."""
        from sklearn.metrics import classification_report

        v = self.vocab
        if self.multi_label:
            return str(classification_report((self.targs > 0.5).int().numpy(), (self.decoded > 0.5).int().numpy(),
                                             target_names=[str(c) for c in v], zero_division=0))
        return str(classification_report(self.targs.reshape(-1).numpy(), self.decoded.reshape(-1).numpy(),
                                         labels=list(range(len(v))), target_names=[str(c) for c in v],
                                         zero_division=0))

    def print_classification_report(self) -> None:
        """Print :meth:`classification_report`; nothing is returned, so a notebook shows the report once."""
        print(self.classification_report())


class SegmentationInterpretation(ClassificationInterpretation):
    """fastai's name for a segmentation model's interpretation: :class:`ClassificationInterpretation`, which counts
    a segmentation model's pixels (``per_pixel``) in its confusion matrix and report and titles its top losses
    with the share of pixels predicted right.

    Example:
    >>> import numpy as np, torch, pipekit.datasets as D
    >>> from pipekit.data import get_image_files
    >>> from pipekit.learn import Learner, SegmentationInterpretation
    >>> from pipekit.vision import Resize, SegmentationDataLoaders
    >>> path = D.path("camvid_tiny")
    >>> dls = SegmentationDataLoaders.from_label_func(
    ...     path, fnames=get_image_files(path / "images")[:10], label_func=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
    ...     codes=np.loadtxt(path / "codes.txt", dtype=str), item_tfms=Resize((24, 32)), bs=5, seed=0)
    >>> learn = Learner(dls, torch.nn.Conv2d(3, len(dls.vocab), 1))    # a class score per pixel
    >>> interp = SegmentationInterpretation.from_learner(learn)
    >>> interp
    SegmentationInterpretation(2 items, 32 classes, mean loss ...)
    >>> interp.per_pixel, interp.confusion_matrix().shape, int(interp.confusion_matrix().sum())   # 2 masks of 24x32
    (True, (32, 32), 1536)
    """
