"""Predictions: over a whole loader (``get_preds``), for one item (``predict``) and with TTA (``tta``)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pipekit.learn.callbacks import Callback

__all__ = ["GatherPreds", "get_preds", "predict", "tta", "show_results"]


def _cpu(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, (tuple, list)):
        return type(x)(_cpu(v) for v in x)
    return x


def _cat(parts: list[Any]) -> Any:
    if not parts:
        return None
    first = parts[0]
    if isinstance(first, torch.Tensor):
        if first.ndim == 0:
            return torch.stack(parts)
        # sequence outputs of different lengths (padded text batches) cannot be concatenated
        if len({p.shape[1:] for p in parts}) > 1:
            return [row for p in parts for row in p]
        return torch.cat(parts)
    if isinstance(first, (tuple, list)):
        return type(first)(_cat([p[i] for p in parts]) for i in range(len(first)))
    return [v for p in parts for v in p]


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


class GatherPreds(Callback):
    """Collects predictions, targets, inputs and per-item losses of a validation pass on the CPU."""

    order = 70
    run_train = False

    def __init__(self, with_input: bool = False, with_loss: bool = False):
        self.with_input, self.with_loss = with_input, with_loss

    def before_validate(self) -> None:
        self.preds: list[Any] = []
        self.targs: list[Any] = []
        self.inputs: list[Any] = []
        self.losses: list[torch.Tensor] = []

    def after_batch(self) -> None:
        learn = self.learn
        self.preds.append(_cpu(learn.pred))
        if learn.yb:
            self.targs.append(_cpu(learn.yb[0] if len(learn.yb) == 1 else learn.yb))
        if self.with_input:
            self.inputs.append(_cpu(learn.xb[0] if len(learn.xb) == 1 else learn.xb))
        if self.with_loss and learn.loss is not None:
            loss = learn.loss.detach().float()
            bs = learn.xb[0].shape[0]
            if loss.ndim == 0:  # a loss without reduction='none': repeat the batch mean
                loss = loss.expand(bs)
            elif loss.numel() != bs:  # sequence losses: mean over the positions of each item
                loss = loss.reshape(bs, -1).mean(1)
            self.losses.append(loss.cpu())


def _item_order(dl: Any, epoch: int, n: int) -> np.ndarray | None:
    """Positions of the items in the order the loader yielded them, when it did not keep their order."""
    plan_fn = getattr(dl, "batch_plan", None)
    if plan_fn is None:
        return None
    try:
        plan = plan_fn(epoch)
        if not all(isinstance(p, np.ndarray) and p.ndim == 1 and p.dtype.kind in "iu" for p in plan):
            return None
        order = np.concatenate(plan) if plan else np.arange(0)
    except Exception:  # a custom loader's plan that is not item positions
        return None
    if len(order) != n or np.array_equal(order, np.arange(n)):
        return None
    if not np.array_equal(np.sort(order), np.arange(n)):
        return None
    return order


class _OneBatch:
    """A loader of one given batch (the zero-row batch of an empty loader)."""

    def __init__(self, batch: tuple, n_inp: int):
        self.batch, self.n_inp = batch, n_inp

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Any:
        yield self.batch


def _empty_batch(dl: Any) -> tuple | None:
    """A batch of zero rows from ``dl``'s dataset (right dtypes and trailing shapes), if it can make one."""
    produce, finish = getattr(dl, "_produce", None), getattr(dl, "_finish", None)
    if produce is None or finish is None or len(getattr(dl, "dataset", ())) != 0:
        return None
    epoch = getattr(dl, "epoch", 0)
    try:  # the loader's own path: gather, batch transforms, device
        return tuple(finish(epoch, 0, produce(epoch, 0, np.zeros(0, dtype=np.int64))))
    except (IndexError, ValueError, RuntimeError, TypeError):  # a dataset that cannot gather nothing
        return None


def get_preds(learn: Any, ds_idx: int = 1, dl: Any = None, with_input: bool = False, with_decoded: bool = False,
              with_loss: bool = False, act: Callable | None = None, reorder: bool = True, cbs: Any = None) -> tuple:
    """See ``Learner.get_preds``."""
    from pipekit.learn.nonfinite import FiniteInputsCheck, check_finite_weights
    from pipekit.learn.recorder import ProgressCallback, Recorder

    dl = learn._get_dl(ds_idx, dl)
    check_finite_weights(learn.model, "get_preds")
    epoch = getattr(dl, "epoch", 0)
    gather = GatherPreds(with_input, with_loss)
    extra = [gather, FiniteInputsCheck(dl, epoch)] + ([] if cbs is None else list(cbs) if isinstance(cbs, (list, tuple))
                                                      else [cbs])
    loss_func = learn.loss_func
    old_red = getattr(loss_func, "reduction", None)
    if with_loss and old_red is not None:
        loss_func.reduction = "none"
    was_training = learn.training
    learn.training = False
    try:
        with learn.removed_cbs([c for c in learn.cbs if isinstance(c, (Recorder, ProgressCallback))]), \
                learn.added_cbs(extra):
            learn._do_validate(dl)
            if not gather.preds:
                # no rows: one zero-row batch through the model gives empty outputs of the right shape/dtype
                empty = _empty_batch(dl)
                if empty is not None:
                    learn._do_validate(_OneBatch(empty, int(getattr(dl, "n_inp", 1))))
    finally:
        if with_loss and old_red is not None:
            loss_func.reduction = old_red
        learn.training = was_training
    preds = _cat(gather.preds)
    targs = _cat(gather.targs)
    inputs = _cat(gather.inputs) if with_input else None
    losses = torch.cat(gather.losses) if gather.losses else None
    if act is None:
        act = getattr(loss_func, "activation", None)
    if act is not None and isinstance(preds, torch.Tensor):
        preds = act(preds)
    if reorder and isinstance(preds, torch.Tensor):
        order = _item_order(dl, epoch, len(preds))
        if order is not None:
            inv = np.argsort(order)
            preds, targs, inputs, losses = (_reindex(v, inv) for v in (preds, targs, inputs, losses))
    out: list[Any] = [inputs] if with_input else []
    out += [preds, targs]
    if with_decoded:
        dec = getattr(loss_func, "decodes", None)
        out.append(dec(preds) if dec is not None and isinstance(preds, torch.Tensor) else preds)
    if with_loss:
        out.append(losses)
    return tuple(out)


def predict(learn: Any, item: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """See ``Learner.predict``."""
    dl = learn.dls.test_dl([item])
    _, preds, _, dec = get_preds(learn, dl=dl, with_input=True, with_decoded=True)
    y_block = getattr(learn.dls, "y_block", None)
    dec0 = dec[0]
    decoded = y_block.decode(dec0) if y_block is not None and hasattr(y_block, "decode") else dec0
    return decoded, dec0, preds[0]


def tta(learn: Any, ds_idx: int = 1, dl: Any = None, n: int = 4, beta: float | None = 0.25,
        use_max: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """See ``Learner.tta``: mean (or max) of ``n`` augmented passes, blended with a plain pass by ``beta``."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"tta: n must be a positive integer, got {n!r}")
    if beta is not None and not 0.0 <= beta <= 1.0:
        raise ValueError(f"tta: beta must be in [0, 1] or None, got {beta!r}")
    dl = learn._get_dl(ds_idx, dl)
    if not hasattr(dl, "new"):
        raise TypeError(f"tta needs a pipekit DataLoader (with .new), got {type(dl).__name__}")
    # the training-time batch augmentation, on the same items in the same order
    aug_dl = dl.new(shuffle=False, augment=True)
    aug_dl.epoch = 0
    runs = []
    targs = None
    for _ in range(n):  # each pass is a new epoch of aug_dl, hence new augmentation parameters
        p, targs = get_preds(learn, dl=aug_dl)[:2]
        runs.append(p)
    stacked = torch.stack(runs)
    aug = stacked.max(0).values if use_max else stacked.mean(0)
    if beta is None:
        return aug, targs
    plain, targs = get_preds(learn, dl=dl)[:2]
    return torch.lerp(aug, plain, beta), targs


def show_results(learn: Any, ds_idx: int = 1, dl: Any = None, max_n: int = 9, path: Any = None) -> Any:
    """See ``Learner.show_results``: one batch of items with their target and prediction."""
    from pipekit.data.dataloaders import show_items

    dl = learn._get_dl(ds_idx, dl)
    if not hasattr(dl, "one_batch") or not hasattr(dl, "decode_batch"):
        raise TypeError(f"show_results needs a pipekit DataLoader, got {type(dl).__name__}")
    if max_n < 1:
        raise ValueError(f"show_results: max_n must be >= 1, got {max_n}")
    batch = dl.one_batch()
    n_inp = int(getattr(dl, "n_inp", 1))
    n = min(max_n, len(batch[0]))
    batch = tuple(b[:n] for b in batch)
    learn.model.eval()
    with torch.no_grad():
        pred = learn.model(*(t.to(learn.device) if isinstance(t, torch.Tensor) else t for t in batch[:n_inp]))
    act = getattr(learn.loss_func, "activation", None)
    dec_fn = getattr(learn.loss_func, "decodes", None)
    pred = pred.float()
    dec = dec_fn(act(pred) if act is not None else pred) if dec_fn is not None else pred
    blocks = getattr(dl, "blocks", ()) or getattr(learn.dls, "blocks", ())
    y_block = blocks[n_inp] if len(blocks) > n_inp else None
    preds = [y_block.decode(d) if y_block is not None else d for d in dec.cpu()]
    return show_items(dl.decode_batch(batch, max_n=n), blocks, n_inp, preds=preds, path=path, name="show_results")
