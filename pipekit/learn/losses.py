"""Losses that flatten their inputs, so ``[bs, n]`` and ``[bs, seq, n]`` predictions both work.

Each loss also knows its output activation (``activation``) and how to turn activated outputs into
predictions (``decodes``); ``Learner.get_preds`` and ``predict`` use them. Losses are registered by
class name with their constructor arguments, so an exported learner records them as JSON.

>>> import torch
>>> loss = CrossEntropyLossFlat()
>>> float(loss(torch.zeros(2, 5, 3), torch.zeros(2, 5, dtype=torch.long))) > 0
True
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BaseLoss", "CrossEntropyLossFlat", "BCEWithLogitsLossFlat", "MSELossFlat", "L1LossFlat",
    "LabelSmoothingCrossEntropy", "LabelSmoothingCrossEntropyFlat", "register_loss", "loss_from_kind",
    "loss_to_json", "loss_from_json", "LOSSES",
]

LOSSES: dict[str, type] = {}


def register_loss(cls: type) -> type:
    """Register a loss class by name so ``learn.export`` can store it; its ``config()`` must be JSON-able."""
    LOSSES[cls.__name__] = cls
    return cls


class BaseLoss(nn.Module):
    """Base for flattened losses: moves ``axis`` (the class axis) last and flattens the rest."""

    def __init__(self, axis: int = -1, flatten: bool = True, floatify: bool = False,
                 is_2d: bool = True, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be one of 'mean', 'sum', 'none'; got {reduction!r}")
        self.axis, self.flatten, self.floatify, self.is_2d, self.reduction = axis, flatten, floatify, is_2d, reduction

    def config(self) -> dict[str, Any]:
        return {"axis": self.axis, "reduction": self.reduction}

    def _prep(self, inp: torch.Tensor, targ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


@register_loss
class CrossEntropyLossFlat(BaseLoss):
    """Cross-entropy over the class axis; targets are class indices. ``activation`` is softmax."""

    def __init__(self, axis: int = -1, weight: list[float] | None = None, ignore_index: int = -100,
                 label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__(axis=axis, is_2d=True, reduction=reduction)
        self.weight_list = list(weight) if weight is not None else None
        self.register_buffer("weight", torch.tensor(weight, dtype=torch.float32) if weight is not None else None,
                             persistent=False)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def config(self) -> dict[str, Any]:
        return {"axis": self.axis, "weight": self.weight_list, "ignore_index": self.ignore_index,
                "label_smoothing": self.label_smoothing, "reduction": self.reduction}

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        inp, targ = self._prep(inp, targ)
        return F.cross_entropy(inp, targ.long(), weight=self.weight, ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing, reduction=self.reduction)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x, dim=self.axis)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(dim=self.axis)


@register_loss
class BCEWithLogitsLossFlat(BaseLoss):
    """Binary cross-entropy on logits for multi-label targets; ``decodes`` thresholds at ``thresh``."""

    def __init__(self, axis: int = -1, thresh: float = 0.5, pos_weight: list[float] | None = None,
                 reduction: str = "mean"):
        super().__init__(axis=axis, floatify=True, is_2d=False, reduction=reduction)
        self.thresh = thresh
        self.pos_weight_list = list(pos_weight) if pos_weight is not None else None
        self.register_buffer("pos_weight", torch.tensor(pos_weight, dtype=torch.float32)
                             if pos_weight is not None else None, persistent=False)

    def config(self) -> dict[str, Any]:
        return {"axis": self.axis, "thresh": self.thresh, "pos_weight": self.pos_weight_list,
                "reduction": self.reduction}

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        targ = targ.to(inp.dtype)
        if self.pos_weight is None:
            inp, targ = inp.reshape(-1), targ.reshape(-1)
        elif self.axis not in (-1, inp.ndim - 1):  # pos_weight broadcasts over the last axis
            inp, targ = inp.movedim(self.axis, -1), targ.movedim(self.axis, -1)
        return F.binary_cross_entropy_with_logits(inp, targ, pos_weight=self.pos_weight, reduction=self.reduction)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x > self.thresh


@register_loss
class MSELossFlat(BaseLoss):
    """Mean squared error on flattened predictions and targets (targets cast to float)."""

    def __init__(self, axis: int = -1, reduction: str = "mean"):
        super().__init__(axis=axis, floatify=True, is_2d=False, reduction=reduction)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(inp.reshape(-1), targ.to(inp.dtype).reshape(-1), reduction=self.reduction)


@register_loss
class L1LossFlat(BaseLoss):
    """Mean absolute error on flattened predictions and targets."""

    def __init__(self, axis: int = -1, reduction: str = "mean"):
        super().__init__(axis=axis, floatify=True, is_2d=False, reduction=reduction)

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(inp.reshape(-1), targ.to(inp.dtype).reshape(-1), reduction=self.reduction)


@register_loss
class LabelSmoothingCrossEntropy(BaseLoss):
    """Cross-entropy with label smoothing: ``(1-eps) * nll + eps * mean(-log p)`` over classes (axis 1)."""

    def __init__(self, eps: float = 0.1, reduction: str = "mean"):
        super().__init__(axis=1, flatten=False, reduction=reduction)
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"LabelSmoothingCrossEntropy: eps must be in [0, 1), got {eps}")
        self.eps = eps

    def config(self) -> dict[str, Any]:
        return {"eps": self.eps, "reduction": self.reduction}

    def forward(self, inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(inp, dim=1)
        smooth = -log_p.mean(dim=1)
        nll = F.nll_loss(log_p, targ.long(), reduction="none")
        loss = (1 - self.eps) * nll + self.eps * smooth
        return loss.mean() if self.reduction == "mean" else loss.sum() if self.reduction == "sum" else loss

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(x, dim=1)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(dim=1)


@register_loss
class LabelSmoothingCrossEntropyFlat(CrossEntropyLossFlat):
    """Flattened label-smoothing cross-entropy (works for ``[bs, seq, n]``)."""

    def __init__(self, eps: float = 0.1, axis: int = -1, reduction: str = "mean"):
        super().__init__(axis=axis, label_smoothing=eps, reduction=reduction)
        self.eps = eps

    def config(self) -> dict[str, Any]:
        return {"eps": self.eps, "axis": self.axis, "reduction": self.reduction}


_KIND_TO_LOSS = {"cross_entropy": CrossEntropyLossFlat, "bce": BCEWithLogitsLossFlat, "mse": MSELossFlat}


def loss_from_kind(kind: str | None) -> BaseLoss:
    """The default loss for a target block's ``loss_kind`` ('cross_entropy', 'bce' or 'mse')."""
    if kind not in _KIND_TO_LOSS:
        raise ValueError(f"no default loss for target loss_kind={kind!r}; pass loss_func= to the Learner "
                         f"(known kinds: {', '.join(_KIND_TO_LOSS)})")
    return _KIND_TO_LOSS[kind]()


def loss_to_json(loss: Any) -> dict[str, Any] | None:
    """``{"name", "config"}`` for a registered loss, else None (a plain function cannot be stored)."""
    name = type(loss).__name__
    if name in LOSSES and LOSSES[name] is type(loss) and hasattr(loss, "config"):
        return {"name": name, "config": loss.config()}
    return None


def loss_from_json(d: dict[str, Any]) -> Any:
    """Rebuild a registered loss from ``loss_to_json``'s output."""
    name = d.get("name")
    if name not in LOSSES:
        raise KeyError(f"loss {name!r} is not registered; import the module that defines it "
                       f"(decorated with @pipekit.learn.register_loss). Known: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](**d.get("config", {}))
