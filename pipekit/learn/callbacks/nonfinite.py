"""NaN and inf in training and prediction: stop at the first one instead of returning NaN silently.

A diverged step (too high a learning rate, an inf in the inputs) leaves NaN in the weights, and from
then on every loss and every prediction is NaN. Three checks keep that from passing unnoticed:

- ``TerminateOnNaNCallback``, in every Learner by default, stops ``fit`` with ``NonFiniteError`` at the
  first non-finite training loss (checked before the backward pass) or weights (checked after the
  optimiser step), and puts back the weights and buffers of the last batch whose loss was finite;
- ``check_finite_weights`` refuses to predict from a model holding NaN/inf (``get_preds``/``predict``);
- ``FiniteInputsCheck`` refuses NaN/inf in the float inputs of a prediction, naming the row and column.

>>> import torch
>>> check_finite_weights(torch.nn.Linear(2, 1))  # finite weights: nothing to say
>>> m = torch.nn.Linear(2, 1); _ = m.bias.data.fill_(float("nan"))
>>> try:
...     check_finite_weights(m)
... except NonFiniteError as e:
...     print(str(e)[:58])
the model's weights hold NaN/inf in 'bias'; it cannot make
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from pipekit.core.errors import DataError, PipekitError
from pipekit.core.protocols import Block, Loader
from pipekit.core.validate import Interval
from pipekit.data.loader import DataLoader
from pipekit.learn.callbacks.core import Callback, CancelBatchException, CancelFitException
from pipekit.learn.callbacks.training import item_order
from pipekit.learn.distributed import trains_together

if TYPE_CHECKING:
    from pipekit.learn.optim import OptimWrapper

__all__ = ["NonFiniteError", "NonFiniteInputError", "TerminateOnNaNCallback", "FiniteInputsCheck",
           "check_finite_weights"]


class NonFiniteError(PipekitError, FloatingPointError):
    """Training or prediction met NaN/inf: a diverged loss, non-finite weights or non-finite inputs.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, NonFiniteError
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> bad = [(x.clone(), y) for x, y in ds]; bad[0][0][0] = float("inf")   # an inf in one training row
    >>> learn = Learner(DataLoaders.from_dsets(bad, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> try:
    ...     learn.fit(1)
    ... except NonFiniteError as e:
    ...     print(e)
    training stopped at epoch 0, batch ...: the training loss was NaN/inf. The model's weights were put back...
    >>> bool(torch.isfinite(learn.model.weight).all())
    True
    """


class NonFiniteInputError(NonFiniteError, DataError):
    """The inputs of a prediction hold NaN/inf (bad input data, named by row and column).

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, NonFiniteInputError
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> bad = [(x.clone(), y) for x, y in ds]; bad[2][0][1] = float("nan")    # a NaN in validation row 2
    >>> learn = Learner(DataLoaders.from_dsets(ds, bad, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> try:
    ...     learn.get_preds()
    ... except NonFiniteInputError as e:
    ...     print(e)
    get_preds: column 1 of input 0 of row 2 is not a finite number (nan)...
    """


def _copy_(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    if dst:  # one fused call instead of a copy per tensor
        torch._foreach_copy_(dst, src)


def _norm_sum(tensors: list[torch.Tensor], exact: bool = False) -> torch.Tensor:
    """One scalar that is finite when every tensor is: the sum of their 2-norms (NaN and inf propagate).

    A 2-norm over all tensors is one fused call, several times cheaper than max |x| or ``isfinite`` per
    tensor. In float32 it also overflows for values beyond ~1e19; ``exact`` accumulates in float64
    instead, where no finite float32 value overflows (MPS has no float64: float32 there).
    """
    dev = tensors[0].device
    norms = (torch._foreach_norm(tensors, 2, dtype=torch.float64) if exact and dev.type != "mps"
             else torch._foreach_norm(tensors))
    return torch.stack([n if n.device == dev else n.to(dev) for n in norms]).sum()


def all_finite_now(tensors: list[torch.Tensor]) -> bool:
    """Whether every tensor is finite, read on the host: the float32 norm, confirmed in float64 only when
    it says no (so the common case costs one fused float32 reduction)."""
    return math.isfinite(_norm_sum(tensors).item()) or math.isfinite(_norm_sum(tensors, exact=True).item())


def check_finite_weights(model: nn.Module, what: str = "predict") -> None:
    """Raise ``NonFiniteError`` naming the parameters/buffers of ``model`` that hold NaN or inf.

    One fused reduction and one host sync when the weights are finite (the case to make cheap: it runs
    before every ``get_preds``); the tensors are only searched one by one to name them in the error.

    >>> import torch
    >>> from pipekit.learn.callbacks.nonfinite import NonFiniteError, check_finite_weights
    >>> model = torch.nn.Linear(3, 2)
    >>> check_finite_weights(model) is None                    # finite: it returns quietly
    True
    >>> _ = model.weight.data[0, 0].fill_(float("inf"))
    >>> try:
    ...     check_finite_weights(model, what="export")
    ... except NonFiniteError as e:
    ...     print(e)
    the model's weights hold NaN/inf in 'weight'; it cannot make meaningful predictions (export)...
    """
    named = [(n, t) for n, t in [*model.named_parameters(), *model.named_buffers()]
             if t.is_floating_point() and t.numel()]
    if not named or all_finite_now([t.detach() for _, t in named]):
        return
    bad = [n for n, t in named if not bool(torch.isfinite(t.detach()).all())]
    more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
    raise NonFiniteError(
        f"the model's weights hold NaN/inf in {', '.join(repr(b) for b in bad[:3])}{more}; it cannot make "
        f"meaningful predictions ({what}). Training diverged: load a checkpoint saved before it (learn.load) "
        "or train again with a lower learning rate.")


class _Snapshot:
    """A copy of the model's parameters and buffers, refreshed in place.

    Refreshing is one fused copy (``torch._foreach_copy_``) into tensors allocated once; on a GPU that is
    a device-to-device copy with no host sync. The optimiser state is not copied (it would triple the
    cost per batch): ``restore`` resets it instead when the diverged step left NaN/inf in it.
    """

    def __init__(self, model: nn.Module):
        self.live = [t.detach() for t in list(model.parameters()) + list(model.buffers())]
        self.saved = [t.clone() for t in self.live]

    def take(self) -> None:
        with torch.no_grad():
            _copy_(self.saved, self.live)

    def restore(self, opt: OptimWrapper | None) -> bool:
        """Put the copy back; returns True if the optimiser state had to be reset."""
        with torch.no_grad():
            _copy_(self.live, self.saved)
        state = opt.opt.state if opt is not None else None
        if not state:
            return False
        ts = [v for st in state.values() for v in st.values()
              if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel()]
        if not ts or all_finite_now(ts):
            return False
        state.clear()  # moments of NaN/inf gradients: the optimiser starts them again from the next step
        return True


class TerminateOnNaNCallback(Callback):
    """Stops training at the first non-finite loss or weights with ``NonFiniteError`` (naming epoch and
    batch), after putting back the weights of the last batch whose loss was finite.

    The loss is checked after the forward pass (before backward), the weights after each optimiser step.
    On the CPU both are checked every batch (a scalar test); on an accelerator the results accumulate on
    the device and are read every ``check_every`` batches (default 16) and at the end of each training
    phase, so there is no host sync per batch; the weights then go back to the last check that passed.
    The weights and buffers are kept in one copy on the model's device, refreshed in place at each check
    that passes; an optimiser state left NaN/inf by the diverged step is reset. On the CPU the checks and
    the copy (fused calls) cost some tens of microseconds per batch, measured at 2-6% of a small MLP's
    batch and about 1% of a small CNN's; ``check_every=8`` makes them eight times rarer, at the price of
    going back up to eight batches.

    A batch it stops is cancelled where the problem is found (no backward pass or step from a NaN loss), and the
    fit is stopped in that batch's ``after_batch``, after the callbacks ordered before this one (the default order 0
    of your own): a callback of your own that checks the loss there (the book's chapter 17 ``TerminateOnNaNCallback``
    raising ``CancelFitException``) acts first and ends the fit its way, quietly; the weights are already put back.

    Under torchrun (``learn.distributed()``) the processes agree at every check (one all-reduce of two flags per
    batch on the CPU): a NaN loss in one process stops all of them before the backward pass, each putting back the
    same weights, and the message says when the NaN was met in another process.

    Every Learner has one; ``Learner(..., terminate_on_nan=False)`` or
    ``learn.remove_cb(TerminateOnNaNCallback)`` trains on through NaN (the Recorder then only warns).

    >>> cb = TerminateOnNaNCallback(check_every=8)
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    unique = True  # one per learner: another replaces it

    order = 15  # after MixedPrecision (10) closed autocast; the loss it reads is the unscaled one
    param_constraints = {"check_every": Interval(1, None, integer=True, none_ok=True)}

    def __init__(self, check_every: int | None = None):
        self.check_every = check_every
        self.check_params()

    @property
    def name(self) -> str:
        return "terminate_on_nan"

    def before_fit(self) -> None:
        learn = self.learn
        dev = learn.device
        self._every = int(self.check_every or (1 if dev.type == "cpu" else 16))
        # under DDP the processes agree on every check: a process must not stop before backward alone (the
        # others would wait in all-reduce), and all must go back to the same weights
        # (only inside learn.distributed(): a fit of rank 0 alone after it, in a process group the user made, checks
        # its own loss and waits for no one)
        self._dist = trains_together(learn.model)
        self._kind_here = -1  # what this process found in the check that stopped the fit (-1: nothing)
        self._first = torch.full((), -1, dtype=torch.long, device=dev)  # first bad (train_iter*3 + kind)
        self._n = 0
        model = learn.model
        # the forward pass also updates buffers (BatchNorm's running statistics), which can overflow while
        # the loss, computed from the batch statistics, is still finite
        self._bufs = [b.detach() for b in model.buffers() if b.is_floating_point() and b.numel()]
        self._weights = [p.detach() for p in model.parameters() if p.is_floating_point() and p.numel()] + self._bufs
        self._snap = _Snapshot(model)
        self._snap_batches = 0  # training batches known good when the snapshot was taken
        self._stop: NonFiniteError | None = None  # found in this batch: raised in its after_batch

    def after_loss(self) -> None:
        learn = self.learn
        loss = learn.loss
        if not learn.training or loss is None:
            return
        if self._every == 1:  # on the CPU: reading a scalar costs nothing, so check before backward
            ok = math.isfinite(loss.item()) if loss.numel() == 1 else bool(torch.isfinite(loss).all())
            kind = self._kind_here = 0 if not ok else 2 if self._bufs and not all_finite_now(self._bufs) else -1
            if self._dist:
                kind = self._agreed(kind, loss.device)
            if kind >= 0:
                self._fail(kind, learn.epoch, learn.iter)
            self._snap.take()  # these weights gave a finite loss: the ones to go back to
            self._snap_batches += 1
            return
        self._flag(torch.isfinite(loss.detach()).all(), 0)
        if self._bufs:
            self._flag(torch.isfinite(_norm_sum(self._bufs, exact=True)), 2)
        self._n += 1
        if self._n % self._every == 0:
            self._check()
            self._snap.take()
            self._snap_batches = self._n

    def after_step(self) -> None:
        if not self._weights:
            return
        if self._every == 1:
            if not all_finite_now(self._weights):
                self._fail(1, self.learn.epoch, self.learn.iter)
        else:  # on an accelerator float64 costs nothing extra and the result stays on the device
            self._flag(torch.isfinite(_norm_sum(self._weights, exact=True)), 1)

    def after_batch(self) -> None:
        stop, self._stop = self.__dict__.get("_stop"), None
        if stop is not None:  # the callbacks ordered before this one have seen the batch: stop the fit now
            raise CancelFitException(error=stop)

    def after_train(self) -> None:
        if self._every > 1:
            self._check(in_batch=False)

    def after_fit(self) -> None:
        self.__dict__.pop("_snap", None)  # the copy of the weights is only needed while training
        self._stop = None  # a callback before this one stopped the fit its way: nothing left to raise

    def _flag(self, finite: torch.Tensor, kind: int) -> None:
        """Remember on the device the first (batch, kind) that was not finite: no host sync."""
        code = self.learn.train_iter * 3 + kind
        self._first = torch.where((self._first < 0) & ~finite, code, self._first)

    def _agreed(self, kind: int, device: torch.device) -> int:
        """The kind every process stops for under DDP: a non-finite loss in any process (0), else non-finite buffers
        in any (2), else none (-1); one all-reduce of two flags."""
        flags = torch.tensor([kind == 0, kind == 2], dtype=torch.int32, device=device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        loss_bad, bufs_bad = flags.tolist()
        return 0 if loss_bad else 2 if bufs_bad else -1

    def _check(self, in_batch: bool = True) -> None:
        first = self._first
        if self._dist:
            # every rank stops at the same check, or the others would wait for it in the next all-reduce
            first = torch.where(first < 0, torch.iinfo(torch.long).max, first)
            torch.distributed.all_reduce(first, op=torch.distributed.ReduceOp.MIN)
            first = torch.where(first == torch.iinfo(torch.long).max, -1, first)
        code = int(first)  # the one host sync of a check
        if code >= 0:
            n_iter = max(1, len(self.learn.dls.train))
            train_iter, kind = divmod(code, 3)
            self._fail(kind, train_iter // n_iter, train_iter % n_iter, in_batch)

    def _fail(self, kind: int, epoch: int, batch: int, in_batch: bool = True) -> None:
        """Put the last good weights back and stop: in a batch, cancel it (no backward pass or step) and stop the fit
        in its ``after_batch``; at the end of a training phase, stop the fit now."""
        learn = self.learn
        reset = self._snap.restore(learn.opt)
        # under DDP (checked every batch) the stop is agreed: the process that met it may be another one
        elsewhere = " in another process of the job" if (
            self._dist and self._every == 1 and kind != 1 and self._kind_here != kind) else ""
        own = " (this process's was finite)" if elsewhere else ""
        what = (f"the training loss was NaN/inf{elsewhere}{own}",
                "the optimiser step left NaN/inf in the weights (the loss was still finite)",
                f"the forward pass left NaN/inf in the model's buffers{elsewhere} (e.g. BatchNorm running "
                "statistics; the loss was still finite)")[kind]
        back = ("the start of this fit" if not self._snap_batches else "the last batch whose loss was finite"
                if self._every == 1 else f"the last check that passed (checked every {self._every} batches)")
        lr = f" (now {learn.opt.lrs[-1]:.3g})" if learn.opt is not None else ""
        err = NonFiniteError(
            f"training stopped at epoch {epoch}, batch {batch}: {what}. The model's weights were put back to "
            f"those of {back}{'; the optimiser state held NaN/inf and was reset' if reset else ''}. "
            f"Lower the learning rate{lr}, add GradientClip, or check the inputs for NaN/inf "
            "(in a table, FillMissing fills nulls, NaN and inf). To train on regardless, build the Learner with "
            "terminate_on_nan=False.")
        if not in_batch:
            raise CancelFitException(error=err)
        self._stop = err
        learn.model.zero_grad(set_to_none=True)  # a diverged step's gradients are not carried to a next batch
        raise CancelBatchException()


def _column_names(block: Block, n: int) -> list[str] | None:
    """The column names of a block that decodes a row into named values (a table's), else None."""
    try:
        row = block.decode(torch.zeros(n))
    except Exception:  # a block whose values are not rows of numbers
        return None
    return list(row) if isinstance(row, dict) and len(row) == n else None


def _learner_call(learn: Any) -> str:
    """The learner's call that met the input, from the learner's state: ``fit`` (its validation phase) outside a
    validation-only pass, else the pass's name, the first word of ``learn.pass_bar`` (``validate``, ``get_preds``,
    ``predict``, ``tta`` of ``tta pass 1/4``)."""
    if not learn.validation_only:
        return "fit"
    bar = learn.pass_bar or "get_preds"
    return bar.split()[0] if bar.split() else "get_preds"


class FiniteInputsCheck(Callback):
    """Refuses NaN/inf in the float inputs of a prediction pass, naming the call, the row and the column.

    Added by ``get_preds`` (and so by ``predict`` and ``tta``): a NaN or inf input gives a NaN prediction, returned as
    if it were an answer. Given to ``fit`` or ``validate`` in ``cbs``, it checks their validation batches; the message
    starts with the call that met the input (``fit:``, ``validate:``, ``get_preds:``, ``predict:``).
    On the CPU each batch is checked before the forward pass; on an accelerator the result stays on the
    device until the end of the pass (one host sync in all).

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, NonFiniteInputError
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> bad = [(x.clone(), y) for x, y in ds]; bad[0][0][0] = float("inf")
    >>> learn = Learner(DataLoaders.from_dsets(ds, bad, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> learn.validate()                                         # validate: a NaN loss, no word of why
    [nan]
    >>> try:
    ...     learn.get_preds()                                    # get_preds checks its inputs with this callback
    ... except NonFiniteInputError as e:
    ...     print(e)
    get_preds: column 0 of input 0 of row 0 is not a finite number (inf)...
    """

    order = 5
    run_train = False

    def __init__(self, dl: Loader, epoch: int = 0, defer: bool | None = None):
        # defer=None: per batch on the CPU, once at the end on an accelerator
        self.dl, self.epoch, self.defer = dl, epoch, defer

    def before_validate(self) -> None:
        self._offset = 0
        self._pending: list[tuple[int, int, tuple[int, ...], torch.Tensor, torch.Tensor]] = []

    def before_batch(self) -> None:
        for k, x in enumerate(self.learn.xb):
            if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel()):
                continue
            defer = x.device.type != "cpu" if self.defer is None else self.defer
            # on the CPU a sum is a fast vectorised pass (isfinite over an image batch is ~30x slower); it
            # is finite unless an input is NaN/inf (or values overflow it: then isfinite decides)
            if not defer and math.isfinite(x.sum().item()):
                continue
            bad = ~torch.isfinite(x)
            first = torch.where(bad.any(), bad.reshape(-1).to(torch.uint8).argmax(), -1)
            self._pending.append((k, self._offset, tuple(x.shape), first, x.reshape(-1)[first.clamp(min=0)].float()))
            if not defer:
                self.after_validate()
        xb = self.learn.xb
        self._offset += int(xb[0].shape[0]) if xb and isinstance(xb[0], torch.Tensor) and xb[0].ndim else 0

    def after_validate(self) -> None:
        """Raise for the first non-finite input found (on an accelerator: the one host sync of the pass)."""
        pending, self._pending = self._pending, []
        firsts = torch.stack([p[3] for p in pending]).cpu().tolist() if pending else []
        for (k, offset, shape, _, value), first in zip(pending, firsts):
            if first >= 0:
                self._raise(k, offset, shape, first, float(value))

    def _raise(self, k: int, offset: int, shape: tuple[int, ...], flat: int, value: float) -> None:
        pos: tuple[int, ...] = tuple(int(p) for p in np.unravel_index(flat, shape)) if shape else (0,)
        i_batch = int(pos[0]) if shape else 0
        position = offset + i_batch
        dl = self.dl
        order = item_order(dl, self.epoch, dl.n) if isinstance(dl, DataLoader) else None
        row = int(order[position]) if order is not None else position
        blocks = dl.blocks if isinstance(dl, DataLoader) else ()
        names = _column_names(blocks[k], shape[1]) if len(shape) == 2 and k < len(blocks) else None
        if names is not None:
            where = f"column {names[int(pos[1])]!r}"
            hint = ("put FillMissing in the procs (it fills nulls, NaN and inf with the training statistic) or "
                    "clean the column before predicting")
        elif len(shape) == 2:
            where = f"column {int(pos[1])} of input {k}"
            hint = "clean the data before predicting"
        else:
            where = f"input {k} at position {tuple(int(p) for p in pos[1:])}"
            hint = "check the item (a corrupt file?) before predicting"
        raise NonFiniteInputError(
            f"{_learner_call(self.learn)}: {where} of row {row} is not a finite number ({value}). After processing, a model's "
            f"inputs must be finite (NaN/inf would give a NaN prediction): {hint}.")
