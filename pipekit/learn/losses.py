"""Losses that flatten their inputs, so ``[bs, n]`` and ``[bs, seq, n]`` predictions both work.

Each loss also knows its output activation (``activation``) and how to turn activated outputs into
predictions (``decodes``); ``Learner.get_preds`` and ``predict`` use them. Losses are components: their
parameters are their ``__init__`` arguments, so an exported learner records them as data. A loss class
of your own is exported once registered with ``pipekit.register(MyLoss)``.

>>> import torch
>>> loss = CrossEntropyLossFlat()
>>> float(loss(torch.zeros(2, 5, 3), torch.zeros(2, 5, dtype=torch.long))) > 0
True
>>> loss.to_record()["class"], loss_from_kind("bce")
('pipekit.learn.CrossEntropyLossFlat', BCEWithLogitsLossFlat())
"""
from __future__ import annotations

import functools
import numbers
import operator
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from pipekit.core.component import Component
from pipekit.core.errors import ParameterError
from pipekit.core.registry import registered
from pipekit.core.validate import BOOL, CLASS_AXIS, Interval, Is, Options, finite_number, plain_number
from pipekit.data.loader import batch_parts
from pipekit.metrics.base import TARGET_KINDS, describe_target, target_fix, target_kind, two_classes_as_labels

__all__ = [
    "BaseLoss", "CrossEntropyLossFlat", "FocalLossFlat", "FocalLoss", "BCEWithLogitsLossFlat", "MSELossFlat",
    "L1LossFlat", "LabelSmoothingCrossEntropy", "LabelSmoothingCrossEntropyFlat", "DiceLoss", "loss_from_kind",
    "Reducible", "item_losses", "item_terms",
]

_REDUCTION = Options("mean", "sum", "none")


@runtime_checkable
class Reducible(Protocol):
    """A loss whose reduction can be switched ('mean', 'sum' or 'none'): pipekit's and torch's losses.
    Per-item losses (``get_preds(with_loss=True)``) and MixUp switch it.

    >>> import torch
    >>> from pipekit.learn.losses import MSELossFlat, Reducible
    >>> isinstance(MSELossFlat(), Reducible), isinstance(torch.nn.L1Loss(), Reducible), isinstance(len, Reducible)
    (True, True, False)
    >>> loss = MSELossFlat(); loss.reduction = "none"
    >>> loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])).tolist()    # one loss per item
    [1.0, 4.0]
    """

    reduction: str


def _weights(values: list[float] | None) -> torch.Tensor | None:
    return torch.tensor(values, dtype=torch.float32) if values is not None else None


def _computed(inp: torch.Tensor, targ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and targets in the dtype a loss computes in: at least float32 (float64 stays float64). Half-precision
    outputs (mixed precision) are compared with float32 targets as they are, not with targets rounded to half
    precision, where a sale of 70000 is inf in float16 and 1001 is 1000 in bfloat16."""
    dtype = torch.promote_types(inp.dtype, torch.float32)
    return inp.to(dtype), targ.to(dtype)


def _weight_list(values: Any) -> Any:
    """Weights given as a list, a tuple, an array or a tensor (fastai's ``weight=tensor([1., 5.])``), as a list of
    plain numbers, which a file records as it does any list of numbers; anything else as it is, for the loss's
    check to refuse."""
    if values is None or isinstance(values, (str, bytes, dict)):
        return values
    try:
        return [plain_number(v) for v in values]
    except TypeError:  # not a sequence
        return values


def _as_index(value: Any) -> int | None:
    """``value`` as a class index (an ``ignore_index``: an int, a numpy integer, a 0-d integer tensor); None for
    anything else."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not (value.is_floating_point() or value.is_complex()):
        value = value.item()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return operator.index(value)
    return None


def _kept_weights(targ: torch.Tensor, keep: torch.Tensor, weight: torch.Tensor | None,
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Of class indices ``targ`` (one per position, integers) of which ``keep`` are kept (not ``ignore_index``): the
    indices with 0 in place of those left out (each a class to look up), and each position's weight in ``dtype``, its
    class's ``weight`` (one per class, on ``targ``'s device; 1 with none) and 0 where left out."""
    safe = torch.where(keep, targ, torch.zeros_like(targ))
    kept = keep.to(dtype)
    return safe, kept if weight is None else weight.to(dtype)[safe] * kept


def _class_weights_of_positions(targ: Any, unreduced: torch.Tensor, ignore_index: Any, weight: Any,
                                float_indices: bool = False) -> torch.Tensor | None:
    """What each position of ``unreduced`` (a loss over class indices with ``reduction='none'``) counts for in the
    loss's ``'mean'``: 0 where the target is ``ignore_index``, else the weight of its class (1 with no ``weight``), as
    torch's cross-entropy divides by their sum. None where ``targ`` is not one class index per position (class
    probabilities, or targets of another shape): the plain mean. ``float_indices``: float targets are class
    indices too (pipekit's losses read them as such)."""
    if (not isinstance(targ, torch.Tensor) or targ.is_complex() or targ.dtype == torch.bool
            or targ.numel() != unreduced.numel() or (targ.is_floating_point() and not float_indices)):
        return None
    targ = targ.reshape(-1).to(unreduced.device).long()
    ignore = _as_index(ignore_index)
    keep = targ != ignore if ignore is not None else torch.ones_like(targ, dtype=torch.bool)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 1 or not len(weight):
        return keep.to(unreduced.dtype)
    return _kept_weights(targ.clamp(0, len(weight) - 1), keep, weight.to(unreduced.device), unreduced.dtype)[1]


#: one term of the items' losses (:meth:`BaseLoss.item_terms`): its factor, each item's sum of its losses per position
#: and the total of their weights (the item's loss is the factor times their ratio, 0 where the total is 0)
ItemTerm = tuple[float, torch.Tensor, torch.Tensor]


def _item_term(unreduced: torch.Tensor, bs: int, weights: torch.Tensor | None, factor: float = 1.0) -> ItemTerm:
    """``unreduced``'s term over ``bs`` items, times ``factor``: each item's sum of its positions weighted by
    ``weights`` and the total of their weights; with no ``weights`` (a plain mean) each item's mean, of total 1."""
    if weights is None:
        means = unreduced.reshape(bs, -1).mean(1)
        return factor, means, torch.ones_like(means)
    return factor, unreduced.reshape(bs, -1).sum(1), weights.reshape(bs, -1).sum(1)


def _mean_per_item(unreduced: torch.Tensor, bs: int, weights: torch.Tensor | None) -> torch.Tensor:
    """The mean of each item's positions in ``unreduced``, weighted by ``weights`` (the weighted sum over the summed
    weights; 0 for an item whose weights are all 0); a plain mean with no ``weights``."""
    if weights is None:
        return unreduced.reshape(bs, -1).mean(1)
    total, kept = unreduced.reshape(bs, -1).sum(1), weights.reshape(bs, -1).sum(1)
    return torch.where(kept > 0, total / kept.clamp_min(torch.finfo(kept.dtype).tiny), 0.0)


def _reduce_terms(terms: list[ItemTerm], bs: int, reduction: str = "none") -> torch.Tensor:
    """The loss of ``bs`` items from their terms (:data:`ItemTerm`): one loss per item (``'none'``), their sum, or
    the mean over the batch that weighs the items by their totals, term by term, as the loss's own ``'mean'``."""
    if reduction == "mean":
        means = [factor * sums.sum() / totals.sum().clamp_min(torch.finfo(totals.dtype).tiny)
                 for factor, sums, totals in terms]
        return functools.reduce(operator.add, means)
    losses = functools.reduce(operator.add, [factor * _mean_per_item(sums, bs, totals)
                                             for factor, sums, totals in terms])
    return losses.sum() if reduction == "sum" else losses


#: the largest weight of a class a loss takes: the loss multiplies each item's loss by its class's weight and sums
#: them over a batch in float32 (largest about 3.4e38), so a weight of 1e308, finite in float64, makes every loss inf
#: or NaN. Real weights are ratios, at most about the rows of the largest data set (inverse class frequencies)
MAX_CLASS_WEIGHT = 1e12


def _class_weights(values: Any, all_zero_ok: bool) -> bool:
    """Whether ``values`` is None or one weight per class, each a number from 0 to :data:`MAX_CLASS_WEIGHT` (and,
    unless ``all_zero_ok``, not all 0, which leaves a 'mean' loss 0 / 0)."""
    if values is None:
        return True
    if isinstance(values, (str, bytes, dict)) or len(values) == 0:
        return False
    w = [finite_number(v) for v in values]
    kept = [x for x in w if x is not None and 0 <= x <= MAX_CLASS_WEIGHT]
    return len(kept) == len(w) and (all_zero_ok or any(x > 0 for x in kept))


#: ``weight`` of the cross-entropy losses
CLASS_WEIGHTS = Is(lambda v: _class_weights(v, all_zero_ok=False),
                   "None or one weight per class, each a number from 0 to 1e12 and not all 0 (the loss multiplies "
                   "and sums them in float32, e.g. [1.0, 5.0] or inverse class frequencies)")
#: ``pos_weight`` of the binary cross-entropy loss (a weight of 0 leaves that class's positives out)
POS_WEIGHTS = Is(lambda v: _class_weights(v, all_zero_ok=True),
                 "None, one weight for every class (a number, or a list of one) or one weight per class, each a "
                 "number from 0 to 1e12 (the loss multiplies them in float32, e.g. the ratio of negatives to "
                 "positives)")
#: focal loss's ``gamma``: the paper's best is 2 and it tries 0 to 5; far larger, every item's loss (and gradient) is
#: 0 or NaN, and past float32's range (a finite 1e308 included) training stops at the first batch
FOCAL_GAMMA = Interval(0, 100, why="the focusing exponent, 2 in the focal loss paper, which tries 0 to 5")


class BaseLoss(nn.Module, Component):
    """Base for flattened losses: moves ``axis`` (the class axis) last and flattens the rest.

    A loss of your own subclasses one of the flat losses below (``CrossEntropyLossFlat``, ``MSELossFlat``, ...),
    whose ``forward`` moves the class axis last and flattens: its constructor's arguments are its parameters (set
    before ``super().__init__``), and ``pipekit.register(MyLoss)`` lets ``learn.export`` save it:

    >>> import torch
    >>> from pipekit.learn import CrossEntropyLossFlat
    >>> class ScaledCE(CrossEntropyLossFlat):
    ...     def __init__(self, scale: float = 2.0, axis: int = -1):
    ...         self.scale = scale
    ...         super().__init__(axis=axis)
    ...     def forward(self, inp, targ):
    ...         return self.scale * super().forward(inp, targ)
    >>> loss = ScaledCE(axis=1)                  # the class axis of (bs, n_classes, h, w) outputs
    >>> loss.get_params()
    {'scale': 2.0, 'axis': 1}
    >>> round(float(loss(torch.zeros(2, 3, 4, 5), torch.zeros(2, 4, 5))), 4)   # 2 * log(3): 3 equal scores a pixel
    2.1972
    """

    abstract = True  # a base class: the conformance suite (tests/conformance.py) checks its subclasses

    registry_kind = "loss"
    #: the target ``loss_kind`` (a block capability) this loss is the default for, or several kinds, each with the
    #: parameters the default is built with (``{"cross_entropy": {}, "pixel_cross_entropy": {"axis": 1}}``)
    default_for: ClassVar[str | dict[str, dict[str, Any]] | None] = None
    #: the targets it reads, as a Learner's data names them (``dls.loss_kind``: 'cross_entropy' class indices,
    #: 'pixel_cross_entropy' a mask's, 'bce' 0/1 labels and 'mse' numbers of the outputs' shape); a Learner on data
    #: of another kind refuses it (:func:`check_loss_targets`). None: not declared (a loss of the user's), never refused
    target_kinds: ClassVar[tuple[str, ...] | None] = None
    #: whether it also reads the class indices of two classes as one 0/1 label per item, from a model of one output
    #: (a single-output binary model)
    reads_two_classes: ClassVar[bool] = False
    param_constraints = {"axis": CLASS_AXIS, "reduction": _REDUCTION}
    __repr__ = Component.__repr__  # the parameters, not torch's module tree

    def __init__(self, axis: int = -1, flatten: bool = True, floatify: bool = False, is_2d: bool = True,
                 reduction: str = "mean"):
        super().__init__()
        self.axis, self.flatten, self.floatify, self.is_2d, self.reduction = axis, flatten, floatify, is_2d, reduction
        self.check_params()

    def class_axis(self, x: torch.Tensor) -> int:
        """``axis``, checked to be an axis of the outputs ``x`` (a loss read from a file may name one of a model
        with more dimensions)."""
        if x.ndim > 1 and not -x.ndim <= self.axis < x.ndim:
            raise ParameterError(f"{type(self).__name__}: axis={self.axis} is not an axis of the model's outputs of "
                                 f"shape {tuple(x.shape)}; give the class axis (-1 for (bs, n_classes), 1 for "
                                 "(bs, n_classes, h, w))")
        return self.axis

    def _prep(self, inp: torch.Tensor, targ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.class_axis(inp)
        if self.floatify and targ.dtype != inp.dtype:
            targ = targ.to(inp.dtype)
        if inp.ndim > 1 and self.axis not in (-1, inp.ndim - 1):
            # movedim keeps the other axes in order (a transpose would swap h and w of a mask)
            inp = inp.movedim(self.axis, -1)
            if self.floatify and targ.ndim == inp.ndim:
                targ = targ.movedim(self.axis, -1)
        if self.flatten:
            inp = inp.reshape(-1, inp.shape[-1]) if self.is_2d else inp.reshape(-1)
            targ = targ.reshape(-1, targ.shape[-1]) if (self.is_2d and self.floatify and targ.ndim > 1) \
                else targ.reshape(-1)
        return inp, targ

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def position_weights(self, targ: Any, unreduced: torch.Tensor) -> torch.Tensor | None:
        """What each position's loss in ``unreduced`` (this loss with ``reduction='none'`` on targets ``targ``)
        counts for in its ``'mean'``; None where all count alike, a plain mean. Losses over class indices
        (:class:`CrossEntropyLossFlat` and its subclasses) give 0 where the target is ``ignore_index``, else the
        weight of its class."""
        return None

    def item_losses(self, unreduced: torch.Tensor, bs: int, targ: Any = None,
                    pred: torch.Tensor | None = None) -> torch.Tensor:
        """One loss for each of the ``bs`` items from the losses per position ``unreduced`` gives (a mask's pixels, a
        text's tokens, from ``reduction='none'`` on outputs ``pred`` and targets ``targ``): this loss's own mean
        over that item alone, the mean of its positions weighted by :meth:`position_weights` (0 for an item whose
        positions all weigh 0, such as a mask all ``ignore_index``, where torch's mean is NaN). Losses that already
        give one per item are returned as they are. ``get_preds(with_loss=True)`` reads it, from :meth:`item_terms`.

        >>> import torch
        >>> from pipekit.learn import CrossEntropyLossFlat
        >>> loss = CrossEntropyLossFlat(axis=1, ignore_index=255, reduction="none")
        >>> out, targ = torch.zeros(2, 3, 1, 4), torch.tensor([[[0, 1, 255, 255]], [[2, 2, 2, 2]]])
        >>> [round(v, 4) for v in loss.item_losses(loss(out, targ), 2, targ).tolist()]   # log(3): void left out
        [1.0986, 1.0986]
        """
        return _reduce_terms(self.item_terms(unreduced, bs, targ, pred), bs)

    def item_terms(self, unreduced: torch.Tensor, bs: int, targ: Any = None,
                   pred: torch.Tensor | None = None) -> list[ItemTerm]:
        """The terms :meth:`item_losses` adds up, each ``(factor, sums, totals)``: each item's sum of its losses per
        position, weighted by :meth:`position_weights`, and the total of their weights (a plain mean: each item's
        mean, of total 1); the item's loss is the sum of ``factor * sums / totals``. A loss whose terms divide by
        different weights has one term each, so that ``MixUp`` mixes two items' terms and weighs the batch's mean by
        their totals, as the loss's own ``'mean'`` does.

        >>> import torch
        >>> from pipekit.learn import CrossEntropyLossFlat
        >>> loss = CrossEntropyLossFlat(axis=1, ignore_index=255, reduction="none")
        >>> out, targ = torch.zeros(2, 3, 1, 4), torch.tensor([[[0, 1, 255, 255]], [[2, 2, 2, 2]]])
        >>> [(f, s.tolist(), n.tolist()) for f, s, n in loss.item_terms(loss(out, targ), 2, targ)]  # 2 and 4 kept
        [(1.0, [2.1972246170043945, 4.394449234008789], [2.0, 4.0])]
        """
        return [_item_term(unreduced, bs, None if unreduced.numel() == bs else self.position_weights(targ, unreduced))]


class CrossEntropyLossFlat(BaseLoss):
    """Cross-entropy over the class axis; targets are class indices. ``activation`` is softmax.

    It is the default loss of class targets (``CategoryBlock``) and, over the channel axis 1 of ``(bs, n_classes,
    h, w)`` outputs, of segmentation masks (``MaskBlock``, whose ``loss_kind`` is 'pixel_cross_entropy').

    >>> loss_from_kind("pixel_cross_entropy")
    CrossEntropyLossFlat(axis=1)
    """

    default_for = {"cross_entropy": {}, "pixel_cross_entropy": {"axis": 1}}
    target_kinds = ("cross_entropy", "pixel_cross_entropy")
    # ``weight`` is the buffer torch reads; the parameter (a list) is kept beside it
    param_attrs = {"weight": "weight_list"}
    weight: torch.Tensor | None
    param_constraints = {"axis": CLASS_AXIS, "weight": CLASS_WEIGHTS, "ignore_index": Interval(integer=True),
                         "reduction": _REDUCTION, "label_smoothing": Interval(0, 1, closed="left")}

    def __init__(self, axis: int = -1, weight: list[float] | None = None, ignore_index: int = -100,
                 label_smoothing: float = 0.0, reduction: str = "mean"):
        self.weight_list = _weight_list(weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing
        super().__init__(axis=axis, is_2d=True, reduction=reduction)
        self.register_buffer("weight", _weights(self.weight_list), persistent=False)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        inp, targ = self._prep(inp, targ)
        return F.cross_entropy(inp, targ.long(), weight=self.weight, ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing, reduction=self.reduction)

    def position_weights(self, targ: Any, unreduced: torch.Tensor) -> torch.Tensor | None:
        return _class_weights_of_positions(targ, unreduced, self.ignore_index, self.weight, float_indices=True)

    def _log_preds(self, inp: torch.Tensor, targ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The log-probabilities of outputs ``inp`` (one row per position, the class axis last), the targets as class
        indices (one per position) and which of them are kept (not ``ignore_index``)."""
        inp, targ = self._prep(inp, targ)
        targ = targ.long()
        return F.log_softmax(inp, dim=-1), targ, targ != self.ignore_index

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x, dim=self.class_axis(x))

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(dim=self.class_axis(x))


class FocalLossFlat(CrossEntropyLossFlat):
    """Focal loss over the class axis (Lin et al., 2017): cross-entropy scaled by ``(1 - p_t) ** gamma``, where
    ``p_t`` is the predicted probability of the true class, so items the model already gets right count less
    and the rare or hard ones more. ``gamma=0`` is cross-entropy. ``weight`` (one per class) multiplies each
    item's loss; ``'mean'`` divides by the summed weights of the items kept, as cross-entropy does, and items of
    ``ignore_index`` are left out. ``activation`` is softmax.

    With ``weight`` or ignored items this is not fastai's ``FocalLossFlat``: fastai takes ``p_t = exp(-w * CE)``
    (the weighted cross-entropy, where pipekit's ``p_t`` is the unweighted probability) and a plain mean over all
    items, ignored ones counted as 0, where pipekit divides by the summed weights of the items kept.

    >>> import torch
    >>> inp, targ = torch.tensor([[3.0, 0.0], [0.0, 0.5]]), torch.tensor([0, 1])
    >>> bool(FocalLossFlat(gamma=0.0)(inp, targ).isclose(CrossEntropyLossFlat()(inp, targ)))
    True
    >>> bool(FocalLossFlat()(inp, targ) < CrossEntropyLossFlat()(inp, targ))
    True
    """

    param_constraints = {"axis": CLASS_AXIS, "weight": CLASS_WEIGHTS, "ignore_index": Interval(integer=True),
                         "reduction": _REDUCTION, "gamma": FOCAL_GAMMA}

    def __init__(self, gamma: float = 2.0, axis: int = -1, weight: list[float] | None = None,
                 ignore_index: int = -100, reduction: str = "mean"):
        self.gamma = gamma
        super().__init__(axis=axis, weight=weight, ignore_index=ignore_index, reduction=reduction)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        log_preds, targ, keep = self._log_preds(inp.float(), targ)
        safe, w = _kept_weights(targ, keep, self.weight, log_preds.dtype)
        logp = log_preds.gather(1, safe[:, None])[:, 0]
        loss = -((1 - logp.exp()) ** self.gamma) * logp * w
        if self.reduction == "mean":
            return loss.sum() / w.sum()
        return loss.sum() if self.reduction == "sum" else loss


class FocalLoss(FocalLossFlat):
    """Focal loss over the class axis 1 (fastai's ``FocalLoss(gamma=2.0, weight=None, reduction='mean')``): the
    scores of ``(bs, n_classes)`` or ``(bs, n_classes, h, w)`` outputs, as ``F.cross_entropy`` reads them, with
    :class:`FocalLossFlat`'s computation (``gamma=0`` is cross-entropy; ``weight``, one per class, as there).
    ``'none'`` gives one loss per item (per pixel of a mask, flattened).

    >>> import torch
    >>> from pipekit.learn import FocalLoss
    >>> inp, targ = torch.tensor([[3.0, 0.0], [0.0, 0.5]]), torch.tensor([0, 1])
    >>> round(float(FocalLoss()(inp, targ)), 4), round(float(FocalLoss(gamma=0.0)(inp, targ)), 4)  # gamma 0: CE
    (0.0338, 0.2613)
    """

    # its axis is always 1
    param_constraints = {"weight": CLASS_WEIGHTS, "reduction": _REDUCTION, "gamma": FOCAL_GAMMA}

    def __init__(self, gamma: float = 2.0, weight: list[float] | None = None, reduction: str = "mean"):
        super().__init__(gamma, axis=1, weight=weight, reduction=reduction)


class BCEWithLogitsLossFlat(BaseLoss):
    """Binary cross-entropy on logits for multi-label targets; ``decodes`` thresholds at ``thresh``.

    ``pos_weight`` multiplies the loss of each positive label: one weight per class (along ``axis``), or one number
    for every class (``pos_weight=3.0``, kept as ``[3.0]``); a single-output binary model's ``(bs, 1)`` outputs
    and ``(bs,)`` targets take one. Outputs of half precision (mixed precision) are compared with the targets in
    float32.

    >>> import torch
    >>> from pipekit.learn import BCEWithLogitsLossFlat
    >>> loss = BCEWithLogitsLossFlat(thresh=0.6)
    >>> inp, targ = torch.tensor([[2.0, -1.0], [0.0, 3.0]]), torch.tensor([[1, 0], [0, 1]])
    >>> round(float(loss(inp, targ)), 4)         # integer 0/1 labels are read as floats
    0.2955
    >>> loss.decodes(loss.activation(inp)).tolist()     # sigmoid, then > 0.6
    [[True, False], [False, True]]
    """

    default_for, target_kinds, reads_two_classes = "bce", ("bce", "mse"), True
    param_attrs = {"pos_weight": "pos_weight_list"}
    pos_weight: torch.Tensor | None
    param_constraints = {"axis": CLASS_AXIS, "pos_weight": POS_WEIGHTS, "reduction": _REDUCTION,
                         "thresh": Interval(0, 1)}

    def __init__(self, axis: int = -1, thresh: float = 0.5, pos_weight: float | list[float] | None = None,
                 reduction: str = "mean"):
        one = plain_number(pos_weight)  # one weight for all classes: a list of one, which broadcasts alike
        self.thresh = thresh
        self.pos_weight_list = _weight_list([one] if type(one) in (int, float) else pos_weight)
        super().__init__(axis=axis, floatify=True, is_2d=False, reduction=reduction)
        self.register_buffer("pos_weight", _weights(self.pos_weight_list), persistent=False)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        inp, targ = _computed(inp, targ)
        if self.pos_weight is None:
            return F.binary_cross_entropy_with_logits(inp.reshape(-1), targ.reshape(-1), reduction=self.reduction)
        if inp.ndim > 1 and self.class_axis(inp) not in (-1, inp.ndim - 1):  # pos_weight broadcasts over the last axis
            if targ.ndim == inp.ndim:
                targ = targ.movedim(self.axis, -1)
            inp = inp.movedim(self.axis, -1)
        n = inp.shape[-1] if inp.ndim > 1 else 1
        if len(self.pos_weight) not in (1, n):
            raise ParameterError(f"{type(self).__name__}: pos_weight holds {len(self.pos_weight)} weights, and the "
                                 f"model gives {n} outputs along axis={self.axis} (shape {tuple(inp.shape)}); give one "
                                 f"weight per output ({n}), or one for all (pos_weight=3.0)")
        inp = inp.reshape(-1, n)
        if targ.numel() == inp.numel():  # (bs,) 0/1 labels of a single-output model's (bs, 1) outputs too
            targ = targ.reshape(-1, n)
        loss = F.binary_cross_entropy_with_logits(inp, targ, pos_weight=self.pos_weight.to(inp.dtype),
                                                  reduction=self.reduction)
        return loss.reshape(-1) if self.reduction == "none" else loss

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x > self.thresh


class MSELossFlat(BaseLoss):
    """Mean squared error on flattened predictions and targets, computed in at least float32: half-precision
    predictions (mixed precision) are compared with the targets as they are, not with targets rounded to half
    precision.

    >>> import torch
    >>> from pipekit.learn import MSELossFlat
    >>> preds, targ = torch.tensor([[1.0], [3.0]]), torch.tensor([2, 5])   # a (bs, 1) output, (bs,) targets
    >>> float(MSELossFlat()(preds, targ)), MSELossFlat(reduction="sum")(preds, targ).item()
    (2.5, 5.0)
    """

    default_for, target_kinds = "mse", ("mse", "bce")

    def __init__(self, axis: int = -1, reduction: str = "mean"):
        super().__init__(axis=axis, floatify=True, is_2d=False, reduction=reduction)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        inp, targ = _computed(inp, targ)
        return F.mse_loss(inp.reshape(-1), targ.reshape(-1), reduction=self.reduction)


class L1LossFlat(MSELossFlat):
    """Mean absolute error on flattened predictions and targets, computed in at least float32 as
    :class:`MSELossFlat`.

    >>> import torch
    >>> from pipekit.learn import L1LossFlat
    >>> preds, targ = torch.tensor([[1.0], [3.0]]), torch.tensor([2, 5])   # a (bs, 1) output, (bs,) targets
    >>> float(L1LossFlat()(preds, targ)), L1LossFlat(reduction="none")(preds, targ).tolist()
    (1.5, [1.0, 2.0])
    """

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        inp, targ = _computed(inp, targ)
        return F.l1_loss(inp.reshape(-1), targ.reshape(-1), reduction=self.reduction)


class LabelSmoothingCrossEntropyFlat(CrossEntropyLossFlat):
    """Label-smoothing cross-entropy over the class axis ``axis`` (works for ``[bs, seq, n]``), fastai's
    ``eps / c * (-sum of log p over the c classes) + (1 - eps) * nll``, each term reduced by ``reduction``;
    ``weight`` (one per class) weights the ``nll`` term only, whose ``'mean'`` divides by the summed weights.
    Unlike fastai's, items whose target is ``ignore_index`` (-100) are left out of both terms and of their means.

    >>> import torch
    >>> inp, targ = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    >>> round(float(LabelSmoothingCrossEntropyFlat(weight=[1.0, 3.0])(inp, targ)), 4)
    0.337
    """

    param_constraints = {"axis": CLASS_AXIS, "weight": CLASS_WEIGHTS, "reduction": _REDUCTION,
                         "eps": Interval(0, 1, closed="left")}

    def __init__(self, eps: float = 0.1, axis: int = -1, weight: list[float] | None = None, reduction: str = "mean"):
        self.eps = eps
        super().__init__(axis=axis, weight=weight, label_smoothing=eps, reduction=reduction)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        log_preds, targ, keep = self._log_preds(inp, targ)
        nll = F.nll_loss(log_preds, targ, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)
        smooth = (-log_preds.sum(dim=-1)).masked_fill(~keep, 0)
        if self.reduction == "mean":
            smooth = smooth.sum() / keep.sum()
        elif self.reduction == "sum":
            smooth = smooth.sum()
        return smooth * (self.eps / log_preds.shape[-1]) + (1 - self.eps) * nll

    def item_terms(self, unreduced: torch.Tensor, bs: int, targ: Any = None,
                   pred: torch.Tensor | None = None) -> list[ItemTerm]:
        """With ``weight`` its two terms divide by different sums (the smoothing term by the kept positions, the
        ``nll`` term by their weights), which the summed losses per position cannot tell apart: each term is taken
        again from the outputs ``pred``; without them, one term, the mean over the kept positions."""
        weights = None if unreduced.numel() == bs or self.weight is None else self.position_weights(targ, unreduced)
        if weights is None:
            return super().item_terms(unreduced, bs, targ, pred)
        if pred is None:
            return [_item_term(unreduced, bs, (weights > 0).to(unreduced.dtype))]
        log_preds, t, keep = self._log_preds(pred, targ.to(pred.device))
        safe, w = _kept_weights(t, keep, self.weight, log_preds.dtype)
        nll, smooth = -log_preds.gather(1, safe[:, None])[:, 0], (-log_preds.sum(dim=-1)).masked_fill(~keep, 0)
        return [_item_term(smooth, bs, keep.to(smooth.dtype), self.eps / log_preds.shape[-1]),
                _item_term(nll * w, bs, w, 1 - self.eps)]


class LabelSmoothingCrossEntropy(LabelSmoothingCrossEntropyFlat):
    """Cross-entropy with label smoothing over the class axis 1: ``(1-eps) * nll + eps * mean(-log p)``, ``weight``
    weighting the ``nll`` term, as :class:`LabelSmoothingCrossEntropyFlat`. ``'none'`` gives one loss per item in
    the targets' layout: ``(bs,)`` for ``(bs, n_classes)`` outputs, ``(bs, h, w)`` for a segmentation's
    ``(bs, n_classes, h, w)``.

    >>> import torch
    >>> from pipekit.learn import LabelSmoothingCrossEntropy
    >>> inp, targ = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([0])    # confident and right
    >>> round(float(LabelSmoothingCrossEntropy(eps=0.0)(inp, targ)), 4)     # plain cross-entropy
    0.036
    >>> round(float(LabelSmoothingCrossEntropy()(inp, targ)), 4)            # eps=0.1: confidence costs a little
    0.3026
    >>> LabelSmoothingCrossEntropy(reduction="none")(torch.zeros(2, 3, 4, 5), torch.zeros(2, 4, 5)).shape
    torch.Size([2, 4, 5])
    """

    # its axis is always 1
    param_constraints = {"weight": CLASS_WEIGHTS, "reduction": _REDUCTION, "eps": Interval(0, 1, closed="left")}

    def __init__(self, eps: float = 0.1, weight: list[float] | None = None, reduction: str = "mean"):
        super().__init__(eps, axis=1, weight=weight, reduction=reduction)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        loss = super().forward(inp, targ)
        if self.reduction == "none" and inp.ndim > 2:  # one loss per pixel, laid out as the outputs less their class axis
            loss = loss.reshape(inp.shape[:1] + inp.shape[2:])
        return loss


class DiceLoss(BaseLoss):
    """Dice loss of a segmentation (fastai's ``DiceLoss``): for each image and class, ``1 - (2 * overlap + smooth) /
    (union + smooth)`` of the softmax of the scores (over the class ``axis``, 1 for ``(bs, n_classes, h, w)``) and the
    mask of that class, where overlap sums their product and union their sum over the pixels (with
    ``square_in_union``, the squared probabilities). ``reduction`` ('sum', as fastai's, 'mean' or 'none', one loss
    per image and class) combines them. Targets are the masks' class indices; a pixel of no class (e.g. 255, a void
    label) belongs to no class's mask. ``activation`` is softmax and ``decodes`` the class of the highest score.

    >>> import torch
    >>> from pipekit.learn import DiceLoss
    >>> scores = torch.zeros(1, 2, 2, 2); scores[0, 1, 0] = scores[0, 0, 1] = 10.0   # class 1 on top, 0 below
    >>> mask = torch.tensor([[[1, 1], [0, 0]]])
    >>> round(float(DiceLoss()(scores, mask)), 4), round(float(DiceLoss()(scores, 1 - mask)), 4)  # right, wrong
    (0.0001, 1.9999)
    >>> DiceLoss(reduction="none")(scores, mask).shape          # one loss per image and class
    torch.Size([1, 2])
    >>> DiceLoss().decodes(scores).tolist()
    [[[1, 1], [0, 0]]]
    """

    target_kinds = ("pixel_cross_entropy",)
    param_constraints = {"axis": CLASS_AXIS, "smooth": Interval(0, 1e6), "reduction": _REDUCTION,
                         "square_in_union": BOOL}

    def __init__(self, axis: int = 1, smooth: float = 1e-6, reduction: str = "sum", square_in_union: bool = False):
        self.smooth, self.square_in_union = smooth, square_in_union
        super().__init__(axis=axis, flatten=False, reduction=reduction)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        axis = self.class_axis(inp) % max(inp.ndim, 1)
        if inp.ndim < 3 or axis == 0 or tuple(targ.shape) != tuple(inp.shape[:axis] + inp.shape[axis + 1:]):
            raise ParameterError(f"{type(self).__name__}: targets of shape {tuple(targ.shape)} do not fit outputs of "
                                 f"shape {tuple(inp.shape)}: it reads the scores of each pixel of a segmentation "
                                 f"((bs, n_classes, h, w) outputs, the class axis at axis={self.axis}) and one class "
                                 "index per pixel (a mask of their shape without the class axis, not one-hot masks)")
        pred = self.activation(_computed(inp, targ)[0]).movedim(axis, 1)
        classes = torch.arange(pred.shape[1], device=targ.device).view(1, -1, *([1] * (pred.ndim - 2)))
        onehot = (targ.unsqueeze(1) == classes).to(pred.dtype)
        dims = list(range(2, pred.ndim))
        inter = (pred * onehot).sum(dim=dims)
        union = ((pred ** 2 if self.square_in_union else pred) + onehot).sum(dim=dims)
        loss = 1 - (2.0 * inter + self.smooth) / (union + self.smooth)
        if self.reduction == "mean":
            return loss.mean()
        return loss.sum() if self.reduction == "sum" else loss

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x, dim=self.class_axis(x))

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(dim=self.class_axis(x))


def loss_from_kind(kind: str | None) -> BaseLoss:
    """The default loss for a target block's ``loss_kind`` ('cross_entropy', 'pixel_cross_entropy', 'bce' or
    'mse'): pipekit's loss class that declares itself ``default_for`` it (a subclass does not inherit the claim),
    built with the parameters it gives for that kind.

    >>> from pipekit.learn import loss_from_kind
    >>> loss_from_kind("cross_entropy"), loss_from_kind("mse")
    (CrossEntropyLossFlat(), MSELossFlat())
    >>> loss_from_kind("ordinal")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: no default loss for target loss_kind='ordinal'; pass loss_func= to the Learner ...
    """
    defaults: dict[str, tuple[type[BaseLoss], dict[str, Any]]] = {}
    for name, cls in registered("loss").items():
        claim = vars(cls).get("default_for")
        if name.startswith("pipekit.") and claim is not None:
            for k, params in ({claim: {}} if isinstance(claim, str) else claim).items():
                defaults[k] = (cls, params)
    if kind not in defaults:
        raise ParameterError(f"no default loss for target loss_kind={kind!r}; pass loss_func= to the Learner "
                             f"(known kinds: {', '.join(sorted(defaults))})")
    cls, params = defaults[kind]
    return cls(**params)


#: the targets (a target block's ``loss_kind``) each of PyTorch's own losses that an export records reads, as a
#: Learner and a loaded file check them: class indices ('cross_entropy', and a mask's 'pixel_cross_entropy') only a
#: cross-entropy reads, and NLLLoss reads nothing else; the others compare outputs with targets of their shape
#: (multi-label 'bce', numbers 'mse')
TORCH_LOSS_TARGETS: dict[str, tuple[str, ...]] = {
    "CrossEntropyLoss": ("cross_entropy", "pixel_cross_entropy", "bce", "mse"),
    "NLLLoss": ("cross_entropy", "pixel_cross_entropy"),
    **{name: ("bce", "mse") for name in ("BCEWithLogitsLoss", "BCELoss", "MSELoss", "L1Loss", "SmoothL1Loss",
                                         "HuberLoss")},
}


def loss_target_kinds(loss: Any) -> tuple[str, ...] | None:
    """The targets (``dls.loss_kind``) ``loss`` reads: a pipekit loss's ``target_kinds``, one of PyTorch's own losses'
    (:data:`TORCH_LOSS_TARGETS`); None for any other loss (a function of the user's)."""
    if isinstance(loss, BaseLoss):
        return loss.target_kinds
    name = type(loss).__name__
    return TORCH_LOSS_TARGETS.get(name) if type(loss) is getattr(nn, name, None) else None


def check_loss_targets(who: str, loss: Any, dls: Any, model: nn.Module | None = None, device: Any = None) -> None:
    """Refuse, before any training, a loss that cannot read the targets of ``dls``: its target kinds
    (:func:`loss_target_kinds`) against the data's ``loss_kind`` (MSELossFlat of class indices, CrossEntropyLossFlat
    of ratings would fail inside torch at the first batch, or train on nonsense). The message names the targets and
    the loss that reads them (``loss_from_kind``).

    Where the kinds alone do not tell, a loss that ``reads_two_classes`` on data of two classes (a single-output
    binary model), two items are run through ``model`` to see it gives one output per item. A loss of the user's
    and data whose kind is not known are not checked.
    """
    kind, reads = target_kind(dls), loss_target_kinds(loss)
    if kind is None or reads is None or kind in reads:
        return
    name = type(loss).__name__
    default = type(loss_from_kind(kind)).__name__
    if two_classes_as_labels(dls, loss):
        n = _outputs_per_item(model, dls, device)
        if n is None or n == 1:
            return
        raise ParameterError(f"{who}: loss_func={name} reads two classes as one 0/1 label per item, from a model of "
                             f"one output per item, and this model gives {n} scores per item for targets that are "
                             f"{describe_target(dls)}: leave loss_func out ({default} reads class indices, one score "
                             "per class), or give the model one output (n_out=1)")
    main = "bce" if name.startswith("BCE") else next((k for k in reads if k != "bce"), reads[0])
    said = " or ".join(TARGET_KINDS[k] for k in reads if k in TARGET_KINDS)
    raise ParameterError(f"{who}: loss_func={name} reads {said}, and this learner's targets are "
                         f"{describe_target(dls)}: leave loss_func out ({default} reads them){target_fix(kind, main)}")


def _outputs_per_item(model: nn.Module | None, dls: Any, device: Any) -> int | None:
    """How many outputs ``model`` gives per item, from two items of ``dls`` (validation ones where there are any);
    None where it cannot tell (no model, no items, a model that fails: ``fit`` then says why)."""
    if model is None:
        return None
    try:
        dl = dls.valid if len(getattr(dls, "loaders", ())) > 1 and len(dls.valid.dataset) else dls.train
        batch = batch_parts(dl.new(bs=min(2, len(dl.dataset)), shuffle=False))
        xb = tuple(x.to(device) if isinstance(x, torch.Tensor) and device is not None else x
                   for x in batch[:dl.n_inp])
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                pred = model(*xb)
        finally:
            model.train(was)
    except Exception:  # whatever fails here fails again in fit, which reports it
        return None
    if not isinstance(pred, torch.Tensor) or pred.ndim == 0:
        return None
    return 1 if pred.ndim == 1 else int(pred.reshape(len(pred), -1).shape[1])


#: PyTorch's losses over class indices whose ``'mean'`` leaves out ``ignore_index`` and divides by the summed class
#: ``weight`` of the targets, as the module (its attributes) or as the function (its keywords, their defaults)
_TORCH_CLASS_INDEX_MODULES = (nn.CrossEntropyLoss, nn.NLLLoss)
_TORCH_CLASS_INDEX_FUNCTIONS = (F.cross_entropy, F.nll_loss)


def _class_index_options(loss_func: Any) -> tuple[Any, Any] | None:
    """``(ignore_index, weight)`` of one of PyTorch's losses over class indices (``nn.CrossEntropyLoss``,
    ``nn.NLLLoss``, ``F.cross_entropy``, ``F.nll_loss`` or a ``functools.partial`` of one); None for any other."""
    if type(loss_func) in _TORCH_CLASS_INDEX_MODULES:
        return loss_func.ignore_index, loss_func.weight
    fn, options = (loss_func.func, loss_func.keywords) if isinstance(loss_func, functools.partial) else (loss_func, {})
    if any(fn is f for f in _TORCH_CLASS_INDEX_FUNCTIONS):
        return options.get("ignore_index", -100), options.get("weight")
    return None


def _unwrapped(loss_func: Any) -> Any:
    """The loss itself: a plain function ``get_preds`` calls with ``reduction='none'`` is held as ``.fn``."""
    return loss_func if isinstance(loss_func, nn.Module) else getattr(loss_func, "fn", loss_func)


def position_weights(loss_func: Any, targ: Any, unreduced: torch.Tensor) -> torch.Tensor | None:
    """What each position's loss in ``unreduced`` counts for in ``loss_func``'s ``'mean'``: a pipekit loss's
    :meth:`BaseLoss.position_weights`; for PyTorch's losses over class indices (``nn.CrossEntropyLoss``,
    ``nn.NLLLoss``, ``F.cross_entropy``, ``F.nll_loss``, a ``functools.partial`` of one) 0 where the target is
    ``ignore_index``, else its class's ``weight``. None for any other loss, whose positions count alike."""
    loss_func = _unwrapped(loss_func)
    if isinstance(loss_func, BaseLoss):
        return loss_func.position_weights(targ, unreduced)
    options = _class_index_options(loss_func)
    return None if options is None else _class_weights_of_positions(targ, unreduced, *options)



def kept_positions(loss_func: Any, targ: torch.Tensor) -> torch.Tensor | None:
    """Which positions of targets ``targ`` count in ``loss_func``'s ``'mean'``, of ``targ``'s shape: those
    :func:`position_weights` gives a weight above 0 (False where the target is ``ignore_index``, such as a mask's void
    pixels, or of a class weighted 0); None where all count.

    >>> import torch
    >>> kept_positions(CrossEntropyLossFlat(axis=1, ignore_index=255), torch.tensor([[0, 255], [2, 1]])).tolist()
    [[True, False], [True, True]]
    >>> kept_positions(MSELossFlat(), torch.tensor([0.5, 2.0])) is None
    True
    """
    weights = position_weights(loss_func, targ, torch.zeros((), device=targ.device).expand(targ.shape))
    return None if weights is None else (weights > 0).reshape(targ.shape)

def item_losses(loss_func: Any, unreduced: torch.Tensor, bs: int, targ: Any = None,
                pred: torch.Tensor | None = None) -> torch.Tensor:
    """One loss for each of the ``bs`` items from ``loss_func``'s losses per position with ``reduction='none'``
    (``unreduced``, on outputs ``pred`` and targets ``targ``), as its own mean over each item alone: a pipekit
    loss's :meth:`BaseLoss.item_losses`; for PyTorch's losses over class indices the mean over the item's positions
    weighted as :func:`position_weights` says (an item whose positions are all ignored gets 0); for any other loss
    the plain mean of the item's positions. Losses that already give one per item are returned as they are.

    >>> import torch, torch.nn.functional as F
    >>> from torch import nn
    >>> out, targ = torch.zeros(2, 3, 4), torch.tensor([[0, 1, 255, 255], [2, 2, 2, 2]])
    >>> loss = F.cross_entropy(out, targ, ignore_index=255, reduction="none")
    >>> [round(v, 4) for v in item_losses(nn.CrossEntropyLoss(ignore_index=255), loss, 2, targ).tolist()]
    [1.0986, 1.0986]
    >>> [round(v, 4) for v in item_losses(nn.MSELoss(), loss, 2, targ).tolist()]    # a plain mean
    [0.5493, 1.0986]
    """
    return _reduce_terms(item_terms(loss_func, unreduced, bs, targ, pred), bs)


def item_terms(loss_func: Any, unreduced: torch.Tensor, bs: int, targ: Any = None,
               pred: torch.Tensor | None = None) -> list[ItemTerm]:
    """The terms :func:`item_losses` adds up (a pipekit loss's :meth:`BaseLoss.item_terms`; for any other loss one
    term, each item's sum weighted by :func:`position_weights` and the total of its weights), which ``MixUp`` mixes.

    >>> import torch, torch.nn.functional as F
    >>> from torch import nn
    >>> out, targ = torch.zeros(2, 3, 4), torch.tensor([[0, 1, 255, 255], [2, 2, 2, 2]])
    >>> loss = F.cross_entropy(out, targ, ignore_index=255, reduction="none")
    >>> [(factor, sums.shape, totals.tolist()) for factor, sums, totals in
    ...  item_terms(nn.CrossEntropyLoss(ignore_index=255), loss, 2, targ)]   # 2 and 4 pixels kept
    [(1.0, torch.Size([2]), [2.0, 4.0])]
    """
    fn = _unwrapped(loss_func)
    if isinstance(fn, BaseLoss):
        return fn.item_terms(unreduced, bs, targ, pred)
    return [_item_term(unreduced, bs, None if unreduced.numel() == bs else position_weights(fn, targ, unreduced))]

