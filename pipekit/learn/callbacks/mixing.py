"""Callbacks that train on mixed pairs of items: MixUp blends whole images, CutMix pastes a box of one image
into another; both mix the two items' losses by the share each item has in the mix.

Their random draws come from torch's global generator, so ``pipekit.set_seed`` makes a run repeat, and a
checkpoint (which keeps that generator's state) resumes it exactly.

>>> from pipekit.learn import CutMix, MixUp
>>> cbs = [MixUp(0.4)]          # or [CutMix(1.0)]: learn.fit_one_cycle(5, 1e-3, cbs=cbs)
"""
from __future__ import annotations

import torch

from pipekit.core.errors import ParameterError, warn
from pipekit.core.validate import POSITIVE
from pipekit.learn.callbacks.core import Callback
from pipekit.learn.losses import Reducible, _reduce_terms, item_terms

__all__ = ["MixUp", "CutMix"]


class MixUp(Callback):
    """MixUp: trains on convex combinations of pairs of items and of their losses (``alpha`` of the Beta).

    Floating-point inputs are blended. Integer inputs (token ids, a table's categories) cannot be: a batch with no
    floating-point input is refused (``ParameterError``; only the labels would be mixed), and where a batch has both
    (a table's categories and continuous columns) the integer ones stay each item's own, with a warning once per fit.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import CrossEntropyLossFlat, Learner, MixUp
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> mix = MixUp(0.4)
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=CrossEntropyLossFlat(), cbs=mix)
    >>> learn.fit(1)
    >>> tuple(mix.lam.shape), bool((mix.lam >= 0.5).all())   # the last batch: each item's own weight in its mix
    ((16,), True)
    >>> learn.loss_func                                       # put back once training ends
    CrossEntropyLossFlat()
    """

    order = 30
    run_valid = False
    param_constraints = {"alpha": POSITIVE}

    def __init__(self, alpha: float = 0.4):
        self.alpha = alpha
        self.check_params()

    def before_fit(self) -> None:
        self._inputs_checked = False

    def _check_inputs(self, xb: tuple) -> None:
        """Refuse a batch none of whose inputs can be blended; warn (once a fit) of integer inputs left unmixed."""
        if self.__dict__.get("_inputs_checked"):
            return
        self._inputs_checked = True
        kinds = [f"{k} ({str(x.dtype).replace('torch.', '')})" for k, x in enumerate(xb)]
        whole = [k for k, x in enumerate(xb) if not x.is_floating_point()]
        if len(whole) == len(xb):
            raise ParameterError(
                f"{type(self).__name__} blends the inputs of two items and weighs their labels alike, and the batch's "
                f"inputs {', '.join(kinds)} hold no floating-point numbers (token ids or categories), which cannot be "
                "blended: only the labels would be mixed, which is label noise. Mix inside the model after its "
                "embedding layer (blend the embeddings with the same weights and pairs), or train without "
                f"{type(self).__name__}")
        if whole:
            which = ", ".join(f"{k} ({str(xb[k].dtype).replace('torch.', '')})" for k in whole)
            warn(f"{type(self).__name__}: input{'s' if len(whole) > 1 else ''} {which} of the batch hold"
                 f"{'' if len(whole) > 1 else 's'} integers (categories or token ids), which cannot be blended: "
                 f"{'they stay' if len(whole) > 1 else 'it stays'} each item's own while its label is mixed with its "
                 "pair's; only the floating-point inputs are mixed")

    def before_train(self) -> None:
        lf = self.learn.loss_func
        if not isinstance(lf, Reducible):
            raise ParameterError(f"{type(self).__name__} needs a loss with a `reduction` attribute (e.g. "
                                 "CrossEntropyLossFlat)")
        self._orig_loss, self._reducible = self.learn.loss_func, lf
        self.learn.loss_func = self._mixed_loss

    def after_train(self) -> None:
        # also when the training phase ends another way: an epoch or the fit cancelled, or an error
        if "_orig_loss" in self.__dict__ and self.learn.loss_func == self._mixed_loss:
            self.learn.loss_func = self._orig_loss

    after_cancel_epoch = after_cancel_fit = release = after_train

    def before_batch(self) -> None:
        learn = self.learn
        self._check_inputs(learn.xb)
        x = learn.xb[0]
        bs = x.shape[0]
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((bs,))
        #: this batch's weights of the items themselves (the larger of each pair)
        self.lam = torch.maximum(lam, 1 - lam).to(x.device)
        self.perm = torch.randperm(bs, device=x.device)
        shape = (bs,) + (1,) * (x.ndim - 1)
        learn.xb = tuple(torch.lerp(xi[self.perm], xi, self.lam.view(shape).to(xi.dtype)) if xi.is_floating_point()
                         else xi for xi in learn.xb)
        self.yb_other = tuple(y[self.perm] for y in learn.yb)

    def _mixed_loss(self, pred: torch.Tensor, *yb: torch.Tensor) -> torch.Tensor:
        lf = self._reducible
        old = lf.reduction
        lf.reduction = "none"
        try:
            l1, l2 = self._orig_loss(pred, *yb), self._orig_loss(pred, *self.yb_other)
        finally:
            lf.reduction = old
        bs, lam = pred.shape[0], self.lam.to(l1.dtype)
        t1, t2 = (yb[0], self.yb_other[0]) if len(yb) == 1 else (None, None)
        # each item mixes the two losses' terms (item_terms): their sums over its positions and the totals of their
        # weights (a mask's void pixels left out, class weights); the batch's mean weighs the items by them, term by
        # term, so with lam=1 a loss over positions (a mask's pixels) gives its own mean; one loss per item (a
        # classifier's) is averaged over the items, as fastai's MixUp does, class weights or not
        mixed = [(factor, torch.lerp(s2, s1, lam), torch.lerp(n2, n1, lam)) for (factor, s1, n1), (_, s2, n2)
                 in zip(item_terms(self._orig_loss, l1, bs, t1, pred), item_terms(self._orig_loss, l2, bs, t2, pred))]
        return _reduce_terms(mixed, bs, old)


class CutMix(MixUp):
    """CutMix: a box of each training image is replaced by the same box of another image of the batch, and the
    two items' losses are mixed by the share of pixels each keeps.

    Each image draws its own share ``lam ~ Beta(alpha, alpha)``, a box ``sqrt(1 - lam)`` of its height and width
    (each side rounded to the nearest pixel, then down to an even number) centred on a uniform random pixel and
    clipped to the image; the weight of its own label is then what the
    clipped box leaves, ``lam = 1 - box area / image area`` (``self.lam``; ``self.perm`` pairs the images and
    ``self.boxes`` holds each box as (top, bottom, left, right), bottom and right excluded). Every input of the
    batch with the images' height and width is cut alike; a first input that is no batch of images is refused (MixUp
    blends other floating-point inputs).

    >>> CutMix().alpha
    1.0
    """

    order = 31

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)

    def before_batch(self) -> None:
        learn = self.learn
        x = learn.xb[0]
        if x.ndim != 4 or not x.is_floating_point():  # the box mask is (B, 1, H, W)
            fix = ("use MixUp for other floating-point inputs" if x.is_floating_point() else
                   "neither CutMix nor MixUp can mix integers (token ids, categories): mix inside the model after its "
                   "embedding layer, or train without them")
            raise ParameterError(f"CutMix cuts boxes out of images, batches (B, C, H, W) of floats; the first input "
                                 f"is {x.dtype} {tuple(x.shape)}: {fix}")
        self._check_inputs(learn.xb)
        bs, (h, w), dev = x.shape[0], x.shape[-2:], x.device
        # drawn on the CPU from the global generator (as MixUp): the same boxes on any device for one seed
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((bs,))
        perm = torch.randperm(bs)
        cut = torch.sqrt(1 - lam)
        half_h, half_w = torch.round(h * cut).long() // 2, torch.round(w * cut).long() // 2
        cy, cx = torch.randint(0, h, (bs,)), torch.randint(0, w, (bs,))
        top, bottom = (cy - half_h).clamp(0, h), (cy + half_h).clamp(0, h)
        left, right = (cx - half_w).clamp(0, w), (cx + half_w).clamp(0, w)
        self.boxes = torch.stack([top, bottom, left, right], 1)
        self.lam = (1 - (bottom - top) * (right - left) / (h * w)).float().to(dev)
        self.perm = perm.to(dev)
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        t, b, lft, r = (v.to(dev).view(bs, 1, 1) for v in (top, bottom, left, right))
        inside = ((rows >= t) & (rows < b) & (cols >= lft) & (cols < r)).unsqueeze(1)  # (B, 1, H, W)
        learn.xb = tuple(torch.where(inside, xi[self.perm], xi)
                         if xi.is_floating_point() and xi.ndim == x.ndim and xi.shape[-2:] == (h, w) else xi
                         for xi in learn.xb)
        self.yb_other = tuple(y[self.perm] for y in learn.yb)
