"""Optimisers with per-layer-group hyper-parameters (lr, mom, wd) over torch's own optimisers.

``opt_func(param_groups, lr) -> torch.optim.Optimizer`` builds the torch optimiser; ``OptimWrapper``
adds what the Learner needs on top: layer groups from a splitter, ``set_hyper('lr', value)`` with a
scalar, a list (one per group) or a ``slice`` (discriminative rates), ``hypers`` (one live dict per group,
as fastai's ``for h in learn.opt.hypers: h['lr'] = x``), freezing of the first groups, and no weight decay
on layers' biases and normalisation layers. ``SGD``, ``RMSProp`` and the step-function optimisers take
fastai's steps (decoupled weight decay by default).

>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
>>> opt = OptimWrapper(model, Adam, lr=1e-3, splitter=lambda m: [list(m[0].parameters()), list(m[1].parameters())])
>>> opt.set_hyper("lr", slice(1e-4, 1e-2)); [round(lr, 6) for lr in opt.lrs]
[0.0001, 0.01]
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from functools import partial
from typing import Any, overload

import numpy as np
import torch
from torch import nn

from pipekit.core.errors import DataError, ParameterError
from pipekit.core.registry import register
from pipekit.core.validate import BOOL, Interval, Is, check, finite_number

__all__ = ["Adam", "SGD", "RMSProp", "Optimizer", "OptimWrapper", "lr_range", "even_mults", "norm_params", "sgd_step",
           "weight_decay", "l2_reg", "average_grad", "average_sqr_grad", "momentum_step", "step_stat", "debias",
           "rms_prop_step", "adam_step", "radam_step", "qhadam_step", "lamb_step", "RAdam", "QHAdam", "Lamb", "LAMB",
           "Lookahead", "ranger"]

#: the normalisation layers whose parameters weight decay leaves out (``wd_bn_bias=False``) and a frozen group keeps
#: training (``train_bn``): fastai's ``norm_types`` (with SyncBatchNorm, a BatchNorm across processes); a GroupNorm's
#: weight is decayed and frozen as fastai's is
_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm,
               nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.SyncBatchNorm)


_FUSED_DEVICES = ("cpu", "cuda")
#: on the CPU with several torch threads, the fused kernel pays off when the parameter tensors average this many
#: elements (a collab model's embedding tables): it splits every tensor across the threads, which for a large one
#: replaces the five or so thread-parallel passes of the per-tensor step by one
_FUSED_CPU_MEAN_NUMEL = 1 << 16
#: ... and are few: a CNN's dozens of tensors (large convolutions beside small norm layers) keep the per-tensor step
_FUSED_CPU_MAX_TENSORS = 16


def _fusable(params: list[dict[str, Any]]) -> bool:
    """Whether torch's fused (one kernel per step) AdamW can take these parameters, and pays off.

    On CPU with one torch thread, or with several when the tensors are few and large (on average
    ``_FUSED_CPU_MEAN_NUMEL`` elements or more, as a collab model's embedding tables). With several threads the fused kernel splits even small
    tensors across them, and on a busy machine waiting for the threads costs far more than the kernel saves
    for a model of many small tensors (a CNN, a tabular MLP); for a few large embedding tables it is the
    per-tensor step's many passes over memory, each a wait for the threads, that cost.
    """
    ts = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    if not ts or not all(isinstance(p, torch.Tensor) and p.is_floating_point() and not p.is_sparse
                         and p.device.type in _FUSED_DEVICES for p in ts):
        return False
    return (all(p.device.type != "cpu" for p in ts) or torch.get_num_threads() == 1
            or (len(ts) <= _FUSED_CPU_MAX_TENSORS and sum(p.numel() for p in ts) >= _FUSED_CPU_MEAN_NUMEL * len(ts)))


# what each optimiser's keyword arguments take, declared beside it: it checks them as it is built, and a file's
# ``learner.opt_kwargs`` are checked against the same ranges before any optimiser is built (:func:`check_opt_args`)
#: a moving average's weight of the past (``mom``, ``sqr_mom``)
_MOMENTUM = Interval(0, 1, closed="left")
#: RAdam's softplus ``beta`` (0: none): the SAdam paper's is 50; past float32's range softplus cannot take it
SOFTPLUS_BETA = Interval(0, 1000, why="softplus's sharpness, e.g. 50; 0 leaves the denominator as Adam's")
#: weight decay: real training uses 1e-5 to 1 (fastai's default 0.01, the book's 0.1). Far above that every weight
#: is decayed to 0, or, past float32's range (a finite 1e308 included), to inf or NaN at the first step
WD = Interval(0, 100, why="weight decay above 100 wipes out or overflows every weight; fastai's default is 0.01")
#: the term added to the denominator of an Adam-like step: real training uses 1e-8 to 1e-3 (fastai's 1e-5, torch's
#: 1e-8); above 1 it, not the gradients, sets the step, and past float32's range every weight becomes NaN
EPS = Interval(0, 1, why="eps only keeps the step's denominator from 0, e.g. 1e-5 or 1e-8; above 1 it sets the step")
#: the arguments the Adam-like optimisers share (RMSProp, RAdam, QHAdam, Lamb and ranger, Adam itself)
_HYPERS: dict[str, Any] = {"mom": _MOMENTUM, "sqr_mom": _MOMENTUM, "eps": EPS, "wd": WD, "decouple_wd": BOOL}


def _check_args(owner: str, ranges: Mapping[str, Any], **values: Any) -> None:
    """Check ``values`` of an optimiser's keyword arguments against the ``ranges`` it declares (those it declares)."""
    check(owner, **{k: (v, ranges[k]) for k, v in values.items() if k in ranges})


_ADAM_ARGS = {**_HYPERS, "fused": Is(lambda v: v is None or isinstance(v, bool), "True, False or None")}


def Adam(params: list[dict[str, Any]], lr: float, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5,
         wd: float = 0.01, decouple_wd: bool = True,
         fused: bool | None = None) -> torch.optim.Optimizer:  # noqa: N802 - fastai's opt_func names
    """AdamW (decoupled weight decay) with the defaults that suit one-cycle training.

    ``decouple_wd=False`` makes ``wd`` L2 regularisation instead (``wd * w`` added to the gradient before
    Adam's moving averages: torch's ``Adam`` with ``weight_decay``, fastai's ``Adam(decouple_wd=False)``).
    ``fused=None`` uses torch's fused kernel when every parameter is a dense float tensor on CUDA, or on
    CPU with one torch thread: one call updates all parameters instead of a handful of tensor operations
    per parameter, which is most of the optimiser's time for small models (results agree to float rounding).

    >>> import torch
    >>> from pipekit.learn import Adam
    >>> w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.tensor([1.0, -4.0])
    >>> opt = Adam([{"params": [w]}], lr=0.1, wd=0.0)
    >>> type(opt).__name__, type(Adam([{"params": [w]}], lr=0.1, decouple_wd=False)).__name__
    ('AdamW', 'Adam')
    >>> opt.step(); [round(v, 4) for v in w.tolist()]     # Adam's first step: lr * sign(grad), whatever its size
    [0.9, 1.1]
    """
    _check_args("Adam", _ADAM_ARGS, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, decouple_wd=decouple_wd, fused=fused)
    params = list(params)
    if fused is None:
        fused = _fusable(params)
    torch_adam = torch.optim.AdamW if decouple_wd else torch.optim.Adam
    return torch_adam(params, lr=lr, betas=(mom, sqr_mom), eps=eps, weight_decay=wd,
                      **({"fused": True} if fused else {}))


_SGD_ARGS = {"mom": _MOMENTUM, "wd": WD, "decouple_wd": BOOL}


def SGD(params: Any, lr: float, mom: float = 0.0, wd: float = 0.0,  # noqa: N802
        decouple_wd: bool = True) -> Optimizer:
    """SGD as a step-function :class:`Optimizer`, fastai's: plain by default as in the book (``partial(SGD, mom=0.9)``
    adds momentum, ``grad_avg = mom * grad_avg + grad; w -= lr * grad_avg``, which a one-cycle schedule then moves).
    ``wd`` is decoupled weight decay (``w *= 1 - lr * wd`` before the step); ``decouple_wd=False`` makes it L2
    regularisation (``grad += wd * w``, torch's ``weight_decay``). An optimizer built without momentum keeps none,
    whatever a schedule asks.

    >>> w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.tensor([1.0, -1.0])
    >>> opt = SGD([{"params": [w]}], lr=0.1, wd=0.5)
    >>> opt.step(); w.data                      # 1 * (1 - 0.1 * 0.5) -/+ 0.1
    tensor([0.8500, 1.0500])
    """
    _check_args("SGD", _SGD_ARGS, mom=mom, wd=wd, decouple_wd=decouple_wd)
    cbs: list[Callable[..., Any]] = [weight_decay if decouple_wd else l2_reg]
    cbs += [average_grad, momentum_step] if mom != 0 else [sgd_step]
    opt = Optimizer(params, cbs, lr=lr, mom=mom, wd=wd)
    opt.momentum_free = mom == 0
    return opt


_RMSPROP_ARGS = _HYPERS


def RMSProp(params: Any, lr: float, sqr_mom: float = 0.99, mom: float = 0.0,  # noqa: N802
            eps: float = 1e-8, wd: float = 0.0, decouple_wd: bool = True) -> Optimizer:
    """RMSProp as a step-function :class:`Optimizer`, fastai's: ``sqr_avg = sqr_mom * sqr_avg + (1 - sqr_mom) *
    grad**2`` and ``w -= lr * g / (sqrt(sqr_avg) + eps)``, where ``g`` is the gradient, or with ``mom`` its moving
    average ``grad_avg = mom * grad_avg + grad`` (momentum on the raw gradient, not torch's on the scaled one).
    ``wd``: decoupled weight decay, or L2 regularisation with ``decouple_wd=False`` (see :func:`SGD`). Built
    without momentum it keeps none, whatever a schedule asks.

    >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([1.0, -4.0])
    >>> opt = RMSProp([{"params": [w]}], lr=0.01, sqr_mom=0.75)
    >>> opt.step(); w.data                      # sqr_avg = 0.25 * grad**2: steps of 0.01 * sign(grad) / 0.5
    tensor([-0.0200,  0.0200])
    """
    _check_args("RMSProp", _RMSPROP_ARGS, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, decouple_wd=decouple_wd)
    cbs: list[Callable[..., Any]] = [weight_decay if decouple_wd else l2_reg]
    cbs += [average_grad, average_sqr_grad] if mom != 0 else [average_sqr_grad]
    opt = Optimizer(params, [*cbs, rms_prop_step], lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)
    opt.momentum_free = mom == 0
    return opt


def _as_float(value: Any) -> Any:
    """A number as a float (a numpy scalar too), as torch's param groups keep hyper-parameters; anything else as is."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    return value


class HyperParams:
    """``hypers``, ``set_hyper`` and ``set_hypers`` over an optimiser's layer groups, written once for
    :class:`OptimWrapper` (``learn.opt``) and the step-function :class:`Optimizer` used on its own. A subclass gives
    ``n_groups``, the torch param group a layer group's values are read from (``_hyper_group``) and how one
    value is set in a layer group (``_set_layer_group``)."""

    @property
    def n_groups(self) -> int:
        raise NotImplementedError

    def _hyper_group(self, gi: int) -> dict[str, Any]:
        raise NotImplementedError

    def _set_layer_group(self, gi: int, name: str, value: Any) -> None:
        raise NotImplementedError

    @property
    def hypers(self) -> list[GroupHypers]:
        """Each layer group's hyper-parameters under the book's names (``lr``, ``mom``, ``sqr_mom``, ``eps``,
        ``wd``; those the optimiser has, then its other numeric options), as ``opt.hypers`` in fastai: one
        live dict per layer group (a :class:`GroupHypers`), so ``for h in learn.opt.hypers: h["lr"] = x`` sets the
        learning rate the next step uses. :meth:`set_hyper` and :meth:`set_hypers` set one value for every group,
        or one per group.

        >>> from torch import nn
        >>> opt = OptimWrapper(nn.Linear(2, 1), Adam, lr=0.01)
        >>> opt.hypers[0]["lr"]
        0.01
        >>> opt.hypers[0]["lr"] = 0.001; opt.lrs
        [0.001]
        """
        return [GroupHypers(self, gi) for gi in range(self.n_groups)]

    def set_hyper(self, name: str, value: Any) -> None:
        """Set ``name`` ('lr', 'mom', 'sqr_mom', 'wd' or any torch group key) for all layer groups: one value for
        all, a list with one per group, or a ``slice`` spread over the groups as for learning rates."""
        values = value if isinstance(value, (list, tuple, np.ndarray)) else [value.start, value.stop] \
            if isinstance(value, slice) else [value]
        bad = next((v for v in values if v is not None and finite_number(v) is None), None)
        if bad is not None or (not isinstance(value, slice) and any(v is None for v in values)):
            raise ParameterError(f"set_hyper: {name}={value!r:.60} is not a number; give a number (or, per layer group, "
                                 f"a list of numbers or a slice), e.g. set_hypers({name}=1e-3)")
        vals = lr_range(value, self.n_groups, name) if name == "lr" or isinstance(
            value, (slice, list, tuple, np.ndarray)) else np.full(self.n_groups, value)
        for gi in range(self.n_groups):
            self._set_layer_group(gi, name, float(vals[gi]))

    def set_hypers(self, **kwargs: Any) -> None:
        """:meth:`set_hyper` for each ``name=value`` (fastai's ``opt.set_hypers(lr=1e-3, mom=0.9)``)."""
        for name, value in kwargs.items():
            self.set_hyper(name, value)


class Optimizer(HyperParams, torch.optim.Optimizer):
    """An optimiser written as step functions, as the book builds them in chapter 16: for every parameter with a
    gradient, each function of ``cbs`` is called in turn as ``cb(p, lr=..., mom=..., wd=..., **state)`` with the
    group's hyper-parameters and what earlier calls returned (a dict: ``{"grad_avg": ...}``), which is kept in
    the parameter's state for the next steps. ``defaults`` are the hyper-parameters (``mom``, ``sqr_mom``,
    ``eps``, ``wd``...); the Learner's schedules set ``lr`` and ``mom`` per layer group, ``wd`` is 0 for layers'
    biases and normalisation layers. Use it as ``opt_func=partial(Optimizer, cbs=[...], mom=0.9)``.

    On its own (chapter 16's training loop), ``hypers`` is one live dict per parameter group and
    ``set_hypers(lr=1e-3)`` sets a value for every group (or one per group: a list or a ``slice``), as fastai's.

    >>> from functools import partial
    >>> w = torch.nn.Parameter(torch.ones(3)); w.grad = torch.ones(3)
    >>> opt = partial(Optimizer, cbs=[average_grad, momentum_step], mom=0.9)([{"params": [w]}], lr=0.1)
    >>> opt.step(); opt.step(); w.data                      # steps of 0.1 * 1, then 0.1 * 1.9
    tensor([0.7100, 0.7100, 0.7100])
    >>> opt.hypers
    [{'lr': 0.1, 'mom': 0.9, 'wd': 0.0}]
    >>> opt.set_hypers(lr=0.01); opt.hypers[0]["lr"]
    0.01
    """

    #: True when built without momentum (``SGD`` and ``RMSProp`` with ``mom=0``): the Learner's schedules then
    #: leave its ``mom`` at 0
    momentum_free: bool = False

    def __init__(self, params: Any, cbs: Sequence[Callable[..., Any]] | Callable[..., Any], lr: float = 1e-3,
                 **defaults: Any):
        cbs = list(cbs) if isinstance(cbs, (list, tuple)) else [cbs]  # type: ignore[list-item]
        if not cbs or not all(callable(cb) for cb in cbs):
            raise ParameterError("Optimizer: cbs must be one or more step functions cb(p, lr, **hyper_and_state)")
        defaults = {k: v for cb in cbs for k, v in getattr(cb, "defaults", {}).items()} | defaults
        if "wd" in defaults:  # kept as torch's key, so a layer group's weight decay can be switched off
            defaults["weight_decay"] = defaults.pop("wd")
        defaults.setdefault("weight_decay", 0.0)
        self.cbs = cbs
        super().__init__(params, {"lr": lr, **defaults})

    @property
    def n_groups(self) -> int:
        return len(self.param_groups)

    def _hyper_group(self, gi: int) -> dict[str, Any]:
        return self.param_groups[gi]

    def _set_layer_group(self, gi: int, name: str, value: Any) -> None:
        # its groups hold the hyper-parameters by their own names: one a step function reads (mom, sqr_mom, eps...)
        # is set even where the group has none yet, as fastai's
        self.param_groups[gi]["weight_decay" if name == "wd" else name] = _as_float(value)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            hyper = {("wd" if k == "weight_decay" else k): v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                for cb in self.cbs:
                    out = cb(p, **{**hyper, **state})
                    if out:
                        state.update(out)
        return loss


# the step functions of chapter 16: each takes the parameter and what it needs by name, and returns the state
# it adds (or nothing)
def _grad(p: torch.Tensor) -> torch.Tensor:
    """The gradient of ``p`` (``Optimizer.step`` calls the step functions only for parameters that have one)."""
    if p.grad is None:
        raise ParameterError("a step function was called on a parameter without a gradient")
    return p.grad.data


def sgd_step(p: torch.Tensor, lr: float, **kwargs: Any) -> None:
    """``p -= lr * grad``.

    >>> import torch
    >>> from pipekit.learn import Optimizer, sgd_step
    >>> w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.tensor([1.0, -2.0])
    >>> sgd_step(w, lr=0.1); w.data
    tensor([0.9000, 1.2000])
    >>> opt = Optimizer([w], cbs=[sgd_step], lr=0.1)     # chapter 16's plain SGD, built from it
    >>> opt.step(); w.data
    tensor([0.8000, 1.4000])
    """
    p.data.add_(_grad(p), alpha=-lr)


def weight_decay(p: torch.Tensor, lr: float, wd: float, do_wd: bool = True, **kwargs: Any) -> None:
    """Decoupled weight decay: ``p *= 1 - lr * wd``.

    >>> import torch
    >>> from pipekit.learn import weight_decay
    >>> w = torch.nn.Parameter(torch.full((2,), 2.0))
    >>> weight_decay(w, lr=0.1, wd=0.5); w.data                # 2 * (1 - 0.1 * 0.5)
    tensor([1.9000, 1.9000])
    >>> weight_decay(w, lr=0.1, wd=0.5, do_wd=False); w.data   # a bias or norm layer's parameter: left as it is
    tensor([1.9000, 1.9000])
    """
    if do_wd and wd != 0:
        p.data.mul_(1 - lr * wd)


def l2_reg(p: torch.Tensor, wd: float, do_wd: bool = True, **kwargs: Any) -> None:
    """L2 regularisation: ``grad += wd * p``.

    >>> import torch
    >>> from pipekit.learn import l2_reg
    >>> w = torch.nn.Parameter(torch.tensor([2.0, -1.0])); w.grad = torch.zeros(2)
    >>> l2_reg(w, wd=0.1); w.grad                  # the weights are left as they are; the gradient grows
    tensor([ 0.2000, -0.1000])
    """
    if do_wd and wd != 0:
        _grad(p).add_(p.data, alpha=wd)


def average_grad(p: torch.Tensor, mom: float, dampening: bool = False, grad_avg: torch.Tensor | None = None,
                 **kwargs: Any) -> dict[str, torch.Tensor]:
    """Moving average of the gradients (``grad_avg = mom * grad_avg + (1 - mom if dampening else 1) * grad``).

    >>> import torch
    >>> from pipekit.learn import average_grad
    >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([1.0, -2.0])
    >>> state = average_grad(w, mom=0.9); state["grad_avg"]
    tensor([ 1., -2.])
    >>> average_grad(w, mom=0.9, **state)["grad_avg"]          # 0.9 * grad_avg + grad
    tensor([ 1.9000, -3.8000])
    >>> average_grad(w, mom=0.9, dampening=True)["grad_avg"]   # Adam's: (1 - 0.9) * grad from zero
    tensor([ 0.1000, -0.2000])
    """
    if grad_avg is None:
        grad_avg = torch.zeros_like(_grad(p))
    damp = 1 - mom if dampening else 1.0
    return {"grad_avg": grad_avg.mul_(mom).add_(_grad(p), alpha=damp)}


def average_sqr_grad(p: torch.Tensor, sqr_mom: float, dampening: bool = True, sqr_avg: torch.Tensor | None = None,
                     **kwargs: Any) -> dict[str, torch.Tensor]:
    """Moving average of the squared gradients.

    >>> import torch
    >>> from pipekit.learn import average_sqr_grad
    >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([2.0, -1.0])
    >>> state = average_sqr_grad(w, sqr_mom=0.9); state["sqr_avg"]      # (1 - 0.9) * grad ** 2
    tensor([0.4000, 0.1000])
    >>> average_sqr_grad(w, sqr_mom=0.9, **state)["sqr_avg"]           # 0.9 * sqr_avg + 0.1 * grad ** 2
    tensor([0.7600, 0.1900])
    """
    if sqr_avg is None:
        sqr_avg = torch.zeros_like(_grad(p))
    damp = 1 - sqr_mom if dampening else 1.0
    return {"sqr_avg": sqr_avg.mul_(sqr_mom).addcmul_(_grad(p), _grad(p), value=damp)}


#: each step function's own hyper-parameters, which an ``Optimizer`` built with it starts from (fastai's
#: ``average_grad.defaults``); what the Optimizer is given overrides them
weight_decay.defaults = {"wd": 0.0}  # type: ignore[attr-defined]
average_grad.defaults = {"mom": 0.9}  # type: ignore[attr-defined]
average_sqr_grad.defaults = {"sqr_mom": 0.99}  # type: ignore[attr-defined]


def momentum_step(p: torch.Tensor, lr: float, grad_avg: torch.Tensor, **kwargs: Any) -> None:
    """``p -= lr * grad_avg``.

    >>> import torch
    >>> from pipekit.learn import Optimizer, average_grad, momentum_step
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> momentum_step(w, lr=0.1, grad_avg=torch.tensor([1.0, -3.0])); w.data
    tensor([0.9000, 1.3000])
    >>> opt = Optimizer([w], cbs=[average_grad, momentum_step], lr=0.1, mom=0.5)   # SGD with momentum
    >>> w.grad = torch.tensor([1.0, 1.0]); opt.step(); opt.step(); w.data          # steps of 0.1, then 0.15
    tensor([0.6500, 1.0500])
    """
    p.data.add_(grad_avg, alpha=-lr)


def step_stat(p: torch.Tensor, step: int = 0, **kwargs: Any) -> dict[str, int]:
    """Counts the steps taken (Adam's debiasing reads it).

    >>> import torch
    >>> from pipekit.learn import Optimizer, sgd_step, step_stat
    >>> w = torch.nn.Parameter(torch.ones(1)); w.grad = torch.ones(1)
    >>> step_stat(w), step_stat(w, step=4)
    ({'step': 1}, {'step': 5})
    >>> opt = Optimizer([w], cbs=[step_stat, sgd_step], lr=0.1)
    >>> opt.step(); opt.step(); opt.state[w]["step"]     # kept in the parameter's state between steps
    2
    """
    return {"step": step + 1}


def debias(mom: float, damp: float, step: int) -> float:
    """What a moving average started at zero must be divided by after ``step`` steps.

    >>> from pipekit.learn import debias
    >>> round(debias(0.9, 1 - 0.9, 1), 4), round(debias(0.9, 1 - 0.9, 2), 4)   # 0.1 * g, then 0.19 * g
    (0.1, 0.19)
    >>> round(debias(0.9, 1 - 0.9, 1000), 4)       # after many steps the average needs no correction
    1.0
    """
    return damp * (1 - mom ** step) / (1 - mom)


def rms_prop_step(p: torch.Tensor, lr: float, sqr_avg: torch.Tensor, eps: float,
                  grad_avg: torch.Tensor | None = None, **kwargs: Any) -> None:
    """RMSProp: ``p -= lr * g / (sqrt(sqr_avg) + eps)`` (``g``: ``grad_avg`` with momentum, else the gradient).

    >>> import torch
    >>> from pipekit.learn import rms_prop_step
    >>> w = torch.nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([1.0, -4.0])
    >>> rms_prop_step(w, lr=0.01, sqr_avg=torch.tensor([0.25, 4.0]), eps=0.0)
    >>> w.data                                   # steps of 0.01 * 1 / 0.5 and 0.01 * -4 / 2
    tensor([-0.0200,  0.0200])
    """
    denom = sqr_avg.sqrt().add_(eps)
    p.data.addcdiv_(grad_avg if grad_avg is not None else _grad(p), denom, value=-lr)


rms_prop_step.defaults = {"eps": 1e-8}  # type: ignore[attr-defined]


def adam_step(p: torch.Tensor, lr: float, mom: float, step: int, sqr_mom: float, grad_avg: torch.Tensor,
              sqr_avg: torch.Tensor, eps: float, **kwargs: Any) -> None:
    """Adam's step on debiased moving averages (after ``average_grad(dampening=True)``, ``average_sqr_grad``
    and ``step_stat``).

    >>> import torch
    >>> from functools import partial
    >>> from pipekit.learn import Optimizer, adam_step, average_grad, average_sqr_grad, step_stat
    >>> w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.tensor([1.0, -4.0])
    >>> cbs = [partial(average_grad, dampening=True), average_sqr_grad, step_stat, adam_step]
    >>> opt = Optimizer([w], cbs=cbs, lr=0.1, mom=0.9, sqr_mom=0.99, eps=1e-8)   # Adam, from its steps
    >>> opt.step(); w.data                       # the first step: lr * sign(grad)
    tensor([0.9000, 1.1000])
    """
    debias1 = debias(mom, 1 - mom, step)
    debias2 = debias(sqr_mom, 1 - sqr_mom, step)
    p.data.addcdiv_(grad_avg, (sqr_avg / debias2).sqrt() + eps, value=-lr / debias1)


def radam_step(p: torch.Tensor, lr: float, mom: float, step: int, sqr_mom: float, grad_avg: torch.Tensor,
               sqr_avg: torch.Tensor, eps: float, beta: float = 0.0, **kwargs: Any) -> None:
    """RAdam's step (Liu et al., 2019): while the moving average of the squared gradients has seen too few steps for
    its variance to be tractable (``rho_t <= 5``, the first five steps with ``sqr_mom=0.99``), a momentum step on the
    debiased average; then Adam's step scaled by the rectification term,
    ``lr * r * (grad_avg / debias1) / (sqrt(sqr_avg / debias2) + eps)``: ``eps`` is added to the square root of the
    debiased average, as fastai's ``RAdam`` adds it (torch's adds it to the root of the raw average, a larger ``eps``
    while ``debias2`` is small, so with gradients near ``eps`` the two differ). ``beta > 0`` passes the denominator
    through ``softplus(x, beta)``, fastai's SAdam variant, which keeps it away from 0.

    >>> import torch
    >>> from functools import partial
    >>> from pipekit.learn import Optimizer, average_grad, average_sqr_grad, radam_step, step_stat
    >>> w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.tensor([1.0, -4.0])
    >>> cbs = [partial(average_grad, dampening=True), average_sqr_grad, step_stat, radam_step]
    >>> opt = Optimizer([w], cbs=cbs, lr=0.1, mom=0.9, sqr_mom=0.99, eps=1e-5)   # RAdam, from its steps
    >>> opt.step(); w.data                       # a first step is lr * grad, not Adam's lr * sign(grad)
    tensor([0.9000, 1.4000])
    """
    debias1, debias2 = 1 - mom ** step, 1 - sqr_mom ** step
    rho_inf = 2 / (1 - sqr_mom) - 1
    rho = rho_inf - 2 * step * sqr_mom ** step / debias2
    if rho > 5:
        rect = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
        denom = (sqr_avg / debias2).sqrt_().add_(eps)
        if beta:
            denom = torch.nn.functional.softplus(denom, beta)
        p.data.addcdiv_(grad_avg, denom, value=-lr * rect / debias1)
    else:
        p.data.add_(grad_avg, alpha=-lr / debias1)


def qhadam_step(p: torch.Tensor, lr: float, mom: float, step: int, sqr_mom: float, grad_avg: torch.Tensor,
                sqr_avg: torch.Tensor, eps: float, nu_1: float, nu_2: float, **kwargs: Any) -> None:
    """QHAdam's step (Ma & Yarats, 2019): the numerator mixes the gradient and its debiased average,
    ``(1 - nu_1) * g + nu_1 * m``, the denominator the squared gradient and its debiased average,
    ``sqrt((1 - nu_2) * g**2 + nu_2 * v) + eps``; ``nu_1 = nu_2 = 1`` is Adam.

    >>> import torch
    >>> from pipekit.learn import qhadam_step
    >>> w = torch.nn.Parameter(torch.zeros(1)); w.grad = torch.tensor([1.0])
    >>> avgs = {"grad_avg": torch.tensor([0.2]), "sqr_avg": torch.tensor([0.04])}   # debiased: m = 2, v = 4
    >>> qhadam_step(w, lr=0.1, mom=0.9, step=1, sqr_mom=0.99, eps=0.0, nu_1=0.5, nu_2=1.0, **avgs)
    >>> round(w.item(), 4)                       # -0.1 * (0.5 * 1 + 0.5 * 2) / sqrt(4)
    -0.075
    """
    g = _grad(p)
    m = grad_avg / (1 - mom ** step)
    v = sqr_avg / (1 - sqr_mom ** step)
    p.data.addcdiv_(torch.lerp(g, m, nu_1), (g * g).mul_(1 - nu_2).add_(v, alpha=nu_2).sqrt_().add_(eps), value=-lr)


#: LAMB's trust ratio is clipped here: a layer of large weights and a tiny update would otherwise take huge steps
LAMB_MAX_TRUST = 10.0


def lamb_step(p: torch.Tensor, lr: float, mom: float, step: int, sqr_mom: float, grad_avg: torch.Tensor,
              sqr_avg: torch.Tensor, eps: float, **kwargs: Any) -> None:
    """LAMB's step (You et al., 2019): Adam's update ``u``, scaled per parameter tensor by the trust ratio
    ``||w|| / ||u||`` (clipped at ``LAMB_MAX_TRUST``; 1 when either norm is 0), so each layer moves by about ``lr``
    times its own size whatever the scale of its gradients.

    >>> import torch
    >>> from pipekit.learn.optim import LAMB_MAX_TRUST, lamb_step
    >>> w = torch.nn.Parameter(torch.tensor([300.0, 400.0])); w.grad = torch.tensor([1.0, 0.0])
    >>> avgs = {"grad_avg": torch.tensor([0.1, 0.0]), "sqr_avg": torch.tensor([0.01, 0.0])}  # Adam's update (1, 0)
    >>> lamb_step(w, lr=0.1, mom=0.9, step=1, sqr_mom=0.99, eps=1e-8, **avgs)
    >>> w.data, LAMB_MAX_TRUST                   # the trust ratio 500 / 1 is clipped to 10
    (tensor([299., 400.]), 10.0)
    """
    update = (grad_avg / (1 - mom ** step)) / (sqr_avg / (1 - sqr_mom ** step)).sqrt_().add_(eps)
    w_norm, u_norm = p.data.norm(), update.norm()
    # a tensor, not a Python number: no wait for the device on every parameter
    trust = torch.where((w_norm > 0) & (u_norm > 0), (w_norm / u_norm).clamp(max=LAMB_MAX_TRUST),
                        torch.ones_like(w_norm))
    p.data.add_(update.mul_(trust), alpha=-lr)


def _adam_cbs(decouple_wd: bool, step_fn: Callable[..., Any]) -> list[Callable[..., Any]]:
    return [weight_decay if decouple_wd else l2_reg, partial(average_grad, dampening=True), average_sqr_grad,
            step_stat, step_fn]


_RADAM_ARGS = {**_HYPERS, "beta": SOFTPLUS_BETA}


def RAdam(params: Any, lr: float, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5,  # noqa: N802
          wd: float = 0.0, beta: float = 0.0, decouple_wd: bool = True) -> Optimizer:
    """Rectified Adam as a step-function :class:`Optimizer` (``opt_func=RAdam``): Adam without the large, noisy
    first steps, so it needs no warm-up. ``decouple_wd=False`` adds ``wd * w`` to the gradient (L2) instead of
    decaying the weights. Its steps are fastai's ``RAdam``'s: ``eps`` is added to the root of the debiased average
    of the squared gradients, where ``torch.optim.RAdam`` adds it to the root of the raw one (the two agree but for
    ``eps``, see :func:`radam_step`). ``beta > 0`` smooths the denominator with a softplus, as fastai's
    ``RAdam(beta=)``.

    >>> w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.tensor([1.0, -2.0])
    >>> opt = RAdam([{"params": [w]}], lr=0.1)
    >>> opt.step(); w.data                         # the first steps: momentum on the debiased gradient average
    tensor([0.9000, 1.2000])
    """
    _check_args("RAdam", _RADAM_ARGS, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, beta=beta, decouple_wd=decouple_wd)
    return Optimizer(params, _adam_cbs(decouple_wd, radam_step), lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd,
                     beta=beta)


_QHADAM_ARGS = {**_HYPERS, "nu_1": Interval(0, 1), "nu_2": Interval(0, 1)}


def QHAdam(params: Any, lr: float, mom: float = 0.999, sqr_mom: float = 0.999, nu_1: float = 0.7,  # noqa: N802
           nu_2: float = 1.0, eps: float = 1e-8, wd: float = 0.0, decouple_wd: bool = True) -> Optimizer:
    """Quasi-hyperbolic Adam as a step-function :class:`Optimizer` (``opt_func=QHAdam``); see :func:`qhadam_step`
    for ``nu_1`` and ``nu_2``, :func:`RAdam` for ``decouple_wd``.

    >>> import torch
    >>> from pipekit.learn import QHAdam
    >>> w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.tensor([1.0, -4.0])
    >>> opt = QHAdam([{"params": [w]}], lr=0.1)
    >>> opt.hypers[0]["nu_1"], opt.hypers[0]["nu_2"]
    (0.7, 1.0)
    >>> opt.step(); w.data                       # a first step: lr * sign(grad), as Adam's
    tensor([0.9000, 1.1000])
    """
    _check_args("QHAdam", _QHADAM_ARGS, mom=mom, sqr_mom=sqr_mom, nu_1=nu_1, nu_2=nu_2, eps=eps, wd=wd,
                decouple_wd=decouple_wd)
    return Optimizer(params, _adam_cbs(decouple_wd, qhadam_step), lr=lr, mom=mom, sqr_mom=sqr_mom, nu_1=nu_1,
                     nu_2=nu_2, eps=eps, wd=wd)


_LAMB_ARGS = _HYPERS


def Lamb(params: Any, lr: float, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5,  # noqa: N802
         wd: float = 0.0, decouple_wd: bool = True) -> Optimizer:
    """LAMB (layer-wise adaptive moments, for large batches) as a step-function :class:`Optimizer`
    (``opt_func=Lamb``); see :func:`lamb_step`, :func:`RAdam` for ``decouple_wd``.

    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0])); w.grad = torch.tensor([1.0, 0.0])
    >>> opt = Lamb([{"params": [w]}], lr=0.1)
    >>> opt.step(); w.data          # Adam's update (~1, 0) is scaled by ||w|| / ||update|| = 5 / ~1
    tensor([2.5000, 4.0000])
    """
    _check_args("Lamb", _LAMB_ARGS, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, decouple_wd=decouple_wd)
    return Optimizer(params, _adam_cbs(decouple_wd, lamb_step), lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)


#: the paper's spelling of :func:`Lamb`
LAMB = Lamb

# the per-parameter state Lookahead adds to its optimiser's in a state dict (names no step function uses)
LOOKAHEAD_SLOW, LOOKAHEAD_COUNT = "lookahead_slow", "lookahead_step"


def lookahead_problem(slow: Any, count: Any, p: torch.Tensor) -> tuple[str, str] | None:
    """What is wrong with one parameter's Lookahead state, as ``(key, what it must be)``, or None: the slow
    weights must be a floating-point tensor of parameter ``p``'s shape, the step count an integer >= 0. The one
    check of a loaded Lookahead state (``Lookahead.load_state_dict`` and the checkpoint check use it)."""
    if not (isinstance(slow, torch.Tensor) and slow.is_floating_point() and tuple(slow.shape) == tuple(p.shape)):
        got = f"{slow.dtype} of shape {tuple(slow.shape)}" if isinstance(slow, torch.Tensor) else repr(str(slow)[:40])
        return LOOKAHEAD_SLOW, (f"must be the slow weights, a floating-point tensor of the parameter's shape, got "
                                f"{got} for a parameter of shape {tuple(p.shape)}")
    if not (type(count) is int and count >= 0):
        return LOOKAHEAD_COUNT, f"must be the step count, an integer >= 0, got {str(count)[:40]!r}"
    return None


_LOOKAHEAD_ARGS = {"k": Interval(1, None, integer=True), "alpha": Interval(0, 1, closed="right")}


class Lookahead(torch.optim.Optimizer):
    """Lookahead (Zhang et al., 2019) around any optimiser: the optimiser's weights (fast weights) explore for ``k``
    steps, then the slow weights move ``alpha`` of the way towards them and the fast weights restart from there:
    ``slow += alpha * (fast - slow); fast = slow``. The slow weights start at the weights of the first step.

    ``opt`` is an optimiser built over the parameter groups (``Adam(params, lr)``, ``SGD``, ``RAdam``, a step-function
    :class:`Optimizer`, any ``torch.optim`` one); the Learner's schedules and layer-group hyper-parameters reach it
    through the shared parameter groups. Use it as ``opt_func=lambda params, lr: Lookahead(SGD(params, lr, mom=0.9))``
    (or :func:`ranger`). Each parameter counts its own steps, so one frozen for a while (``freeze``) keeps its own
    ``k``-step rhythm. A checkpoint (``learn.save``) holds the slow weights and counts with the optimiser's state.

    >>> w = torch.nn.Parameter(torch.zeros(1))
    >>> opt = Lookahead(SGD([{"params": [w]}], lr=1.0), k=2, alpha=0.5)
    >>> for _ in range(2):
    ...     w.grad = torch.tensor([-1.0]); opt.step()
    >>> w.data                        # fast weights reached 2; the slow ones (0) moved half way, and so did w
    tensor([1.])
    """

    def __init__(self, opt: torch.optim.Optimizer, k: int = 6, alpha: float = 0.5):
        if not isinstance(opt, torch.optim.Optimizer):
            raise ParameterError(f"Lookahead wraps an optimiser built over the parameters, e.g. Lookahead(Adam(params, "
                                 f"lr)), not a {type(opt).__name__}; as an opt_func: lambda params, lr: "
                                 "Lookahead(Adam(params, lr))")
        _check_args("Lookahead", _LOOKAHEAD_ARGS, k=k, alpha=alpha)
        self.opt, self.k, self.alpha = opt, int(k), float(alpha)
        super().__init__(opt.param_groups, opt.defaults)
        self.param_groups = opt.param_groups  # shared: a hyper-parameter set here is the optimiser's

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        stepped = [p for p in self._params() if p.grad is not None]
        for p in stepped:
            if LOOKAHEAD_SLOW not in self.state[p]:
                self.state[p] = {LOOKAHEAD_SLOW: p.detach().clone(), LOOKAHEAD_COUNT: 0}
        loss = self.opt.step(closure)
        for p in stepped:
            st = self.state[p]
            st[LOOKAHEAD_COUNT] += 1
            if st[LOOKAHEAD_COUNT] % self.k == 0:
                slow = st[LOOKAHEAD_SLOW]
                slow.add_(p.detach() - slow, alpha=self.alpha)
                p.copy_(slow)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state dict, each parameter's state also holding its slow weights and step count."""
        sd = self.opt.state_dict()
        state = dict(sd["state"])
        for i, p in enumerate(self._params()):
            st = self.state.get(p)
            if st:  # a new dict: the optimiser's state_dict hands out its live per-parameter dicts
                state[i] = {**state.get(i, {}), LOOKAHEAD_SLOW: st[LOOKAHEAD_SLOW], LOOKAHEAD_COUNT: st[LOOKAHEAD_COUNT]}
        return {"state": state, "param_groups": sd["param_groups"]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict`; the slow weights are checked against their parameters before
        anything changes (a :class:`DataError` names the parameter)."""
        params = self._params()
        inner, ours = {}, {}
        for i, st in state_dict["state"].items():
            st = dict(st)
            mine = {k: st.pop(k) for k in (LOOKAHEAD_SLOW, LOOKAHEAD_COUNT) if k in st}
            if mine:
                p = params[i] if type(i) is int and 0 <= i < len(params) else None
                slow, count = mine.get(LOOKAHEAD_SLOW), mine.get(LOOKAHEAD_COUNT)
                problem = ("a parameter", "must be one of the optimiser's") if p is None else \
                    lookahead_problem(slow, count, p)
                if problem is not None:
                    raise DataError(f"Lookahead state of parameter {str(i)[:20]}: {problem[0]!r} {problem[1]}; load a "
                                    f"state saved with the same model and optimiser")
                assert p is not None and isinstance(slow, torch.Tensor)
                ours[p] = {LOOKAHEAD_SLOW: slow.detach().to(device=p.device, dtype=p.dtype).clone(), LOOKAHEAD_COUNT: count}
            if st:
                inner[i] = st
        self.opt.load_state_dict({"state": inner, "param_groups": state_dict["param_groups"]})
        self.param_groups = self.opt.param_groups  # torch's load builds new group dicts
        self.state = defaultdict(dict, ours)


_RANGER_ARGS = {**_RADAM_ARGS, **_LOOKAHEAD_ARGS}  # checked by the RAdam and the Lookahead it builds


def ranger(params: Any, lr: float, mom: float = 0.95, sqr_mom: float = 0.99, eps: float = 1e-6, wd: float = 0.01,
           decouple_wd: bool = True, k: int = 6, alpha: float = 0.5, beta: float = 0.0) -> Lookahead:
    """Ranger: :func:`RAdam` inside :class:`Lookahead`, with the defaults fastai users know
    (``opt_func=ranger``, often with ``fit_flat_cos``); ``beta`` as in :func:`RAdam`.

    >>> import torch
    >>> from pipekit.learn import ranger
    >>> w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.tensor([1.0, -2.0])
    >>> opt = ranger([{"params": [w]}], lr=0.1)
    >>> type(opt).__name__, type(opt.opt).__name__, opt.k, opt.alpha
    ('Lookahead', 'Optimizer', 6, 0.5)
    >>> opt.step(); [round(v, 4) for v in w.tolist()]     # weight decay 1 - 0.1 * 0.01, then RAdam's first step
    [0.899, 1.199]
    """
    return Lookahead(RAdam(params, lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, beta=beta,
                           decouple_wd=decouple_wd), k=k, alpha=alpha)


#: pipekit's optimisers and the ranges of their keyword arguments. Each is registered by name
#: (``pipekit.learn.Adam``), as an export records a learner's opt_func: a file names one of these, never a function of
#: its own, and load_learner gives the loaded learner the same optimiser
_OPT_ARGS: dict[Callable[..., Any], Mapping[str, Any]] = {
    Adam: _ADAM_ARGS, SGD: _SGD_ARGS, RMSProp: _RMSPROP_ARGS, RAdam: _RADAM_ARGS, QHAdam: _QHADAM_ARGS,
    Lamb: _LAMB_ARGS, ranger: _RANGER_ARGS}
for _opt_func in _OPT_ARGS:
    register(_opt_func, kind="optimizer")


def opt_arg_ranges(opt_func: Callable[..., Any]) -> Mapping[str, Any]:
    """The keyword arguments ``opt_func`` declares a range for, each with its constraint: every one but ``lr`` of
    pipekit's optimisers (``SGD``, ``Adam``, ``ranger``...), none of another optimiser."""
    return dict(_OPT_ARGS.get(opt_func, {}))


def check_opt_args(opt_func: Callable[..., Any], **values: Any) -> None:
    """Check keyword arguments of ``opt_func`` as it checks them when built, without building it (building one imports
    torch's compiler): a ParameterError names the optimiser, the argument and what it takes. Arguments it declares no
    range for (:func:`opt_arg_ranges`) are not checked here.

    >>> check_opt_args(SGD, mom=0.9); check_opt_args(ranger, k=3)
    >>> check_opt_args(SGD, mom=2.0)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: SGD: mom=2.0 is not accepted; expected a number in [0, 1)
    """
    _check_args(getattr(opt_func, "__name__", type(opt_func).__name__), _OPT_ARGS.get(opt_func, {}), **values)


def even_mults(start: float, stop: float, n: int) -> np.ndarray:
    """``n`` values spaced geometrically from ``start`` to ``stop``.

    >>> from pipekit.learn.optim import even_mults
    >>> [round(float(v), 6) for v in even_mults(1e-5, 1e-3, 3)]
    [1e-05, 0.0001, 0.001]
    """
    return np.array([stop], dtype=float) if n == 1 else start * (stop / start) ** (np.arange(n) / (n - 1))


def valid_lr(lr: Any) -> bool:
    """Whether ``lr`` is a learning rate: a positive finite number, a slice of them, or a list of them."""
    vals = [v for v in (lr.start, lr.stop) if v is not None] if isinstance(lr, slice) else \
        list(np.atleast_1d(np.asarray(lr, dtype=object)))
    return all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and np.isfinite(v) and v > 0
               for v in vals)


#: the constraint on a learning rate argument (``fit``'s ``lr``, ``fit_one_cycle``'s ``lr_max``, ...)
LR_VALUE = Is(valid_lr, "a positive finite number, a slice of them, or a list")
LR_OR_NONE = Is(lambda lr: lr is None or valid_lr(lr), "a positive finite number, a slice of them, a list or None")


def lr_range(lr: float | slice | Sequence[float] | np.ndarray, n_groups: int, name: str = "lr") -> np.ndarray:
    """Expand ``lr`` (or another hyper-parameter, ``name``) to one value per layer group.

    ``slice(hi)`` gives ``hi/10`` to every group but the last; ``slice(lo, hi)`` spaces values
    geometrically from ``lo`` (first group) to ``hi`` (last group).

    >>> from pipekit.learn.optim import lr_range
    >>> lr_range(slice(1e-3), 3).tolist(), [round(float(v), 6) for v in lr_range(slice(1e-5, 1e-3), 3)]
    ([0.0001, 0.0001, 0.001], [1e-05, 0.0001, 0.001])
    >>> lr_range(1e-3, 2).tolist()
    [0.001, 0.001]
    >>> lr_range([1e-3, 1e-2], 3)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: got 2 learning rates for 3 parameter groups; pass one value, a slice, or exactly 3 values
    """
    if isinstance(lr, slice):
        if lr.stop is None:
            raise ParameterError("a learning-rate slice needs a stop value, e.g. slice(1e-3) or slice(1e-5, 1e-3)")
        if lr.start is None:
            return np.array([lr.stop / 10] * (n_groups - 1) + [lr.stop], dtype=float)
        return even_mults(lr.start, lr.stop, n_groups)
    arr = np.atleast_1d(np.asarray(lr, dtype=float))
    if arr.size == 1:
        return np.full(n_groups, float(arr[0]))
    if arr.size != n_groups:
        what = "learning rates" if name == "lr" else f"values of {name}"
        raise ParameterError(f"got {arr.size} {what} for {n_groups} parameter groups; pass one value, "
                             f"a slice, or exactly {n_groups} values")
    return arr


def norm_params(model: nn.Module) -> set[int]:
    """ids of the parameters of normalisation layers (BatchNorm, LayerNorm, ...).

    >>> from torch import nn
    >>> from pipekit.learn.optim import norm_params
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    >>> ids = norm_params(model)
    >>> len(ids), id(model[1].weight) in ids, id(model[0].weight) in ids
    (2, True, False)
    """
    return {id(p) for m in model.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters(recurse=False)}


def _norm_bias_params(model: nn.Module) -> set[int]:
    """ids of the parameters weight decay leaves out by default, as fastai's ``wd_bn_bias=False``: those of
    normalisation layers and each module's own ``bias`` Parameter (``nn.Linear``, ``nn.Conv2d``...). A parameter
    merely named like a bias (``user_bias = nn.Parameter(...)`` in chapter 8's ``DotProductBias``) is decayed."""
    ids = norm_params(model)
    for m in model.modules():
        bias = getattr(m, "bias", None)
        if isinstance(bias, nn.Parameter):
            ids.add(id(bias))
    return ids


# hyper-parameter name -> how it is stored in a torch param group
def _set_group(group: dict[str, Any], name: str, value: Any) -> None:
    if name in ("mom", "sqr_mom") and "betas" in group:
        b1, b2 = group["betas"]
        group["betas"] = (value, b2) if name == "mom" else (b1, value)
    elif name in ("mom", "sqr_mom"):
        key = name if name in group else "momentum" if name == "mom" else "alpha"  # pipekit's Optimizer: by name
        if key in group:
            group[key] = value
    else:
        group["weight_decay" if name == "wd" else name] = value


def _get_group(group: dict[str, Any], name: str) -> Any:
    if name == "mom":
        return group["betas"][0] if "betas" in group else group.get("mom", group.get("momentum"))
    if name == "sqr_mom":
        return group["betas"][1] if "betas" in group else group.get("sqr_mom", group.get("alpha"))
    return group.get("weight_decay" if name == "wd" else name)


#: the book's names for hyper-parameters, as ``learn.opt.hypers`` lists them, and the torch group keys it leaves
#: out of its listing (those it shows under the book's names, and the parameters)
_BOOK_HYPERS = ("lr", "mom", "sqr_mom", "eps", "wd")
_TORCH_HYPERS = frozenset({"params", "betas", "momentum", "alpha", "weight_decay"})


def _hyper_names(group: dict[str, Any]) -> list[str]:
    """The hyper-parameters of a torch param group under the book's names (those it has), then its other
    numeric options (``nu_1``, torch's ``dampening``...)."""
    names = [k for k in _BOOK_HYPERS if _get_group(group, k) is not None]
    return names + [k for k, v in group.items() if k not in _TORCH_HYPERS and k not in names
                    and isinstance(v, (int, float)) and not isinstance(v, bool)]


class GroupHypers(MutableMapping):  # type: ignore[type-arg]
    """One layer group's hyper-parameters as a dict whose reads and writes go to the optimiser: what
    ``learn.opt.hypers[i]`` (and a step-function :class:`Optimizer`'s ``opt.hypers[i]``) is. ``h["lr"] = 1e-3`` sets the learning rate the next step uses, as fastai's
    ``for h in learn.opt.hypers: h["lr"] = ...`` does (weight decay stays off biases and normalisation layers,
    and momentum off an optimiser built without it, as with :meth:`OptimWrapper.set_hyper`).

    >>> from torch import nn
    >>> opt = OptimWrapper(nn.Linear(2, 1), SGD, lr=0.1)
    >>> for h in opt.hypers:
    ...     h["lr"] = h["lr"] / 2
    >>> opt.lrs
    [0.05]
    """

    def __init__(self, owner: HyperParams, index: int):
        self._owner, self._index = owner, index

    def _first(self) -> dict[str, Any]:
        return self._owner._hyper_group(self._index)

    def __getitem__(self, name: str) -> Any:
        v = _get_group(self._first(), name)  # torch's own keys ("betas") read too, though not listed
        if v is None or name == "params":
            raise KeyError(name)
        return v

    def __setitem__(self, name: str, value: Any) -> None:
        if name == "params":
            raise ParameterError(f"hypers[{self._index}]['params']: the parameters of a group are not a "
                                 "hyper-parameter; build the optimiser with another splitter instead")
        self._owner._set_layer_group(self._index, name, value)

    def __delitem__(self, name: str) -> None:
        raise ParameterError(f"hypers[{self._index}]: hyper-parameters cannot be removed; set {name!r} instead")

    def __iter__(self) -> Iterator[str]:
        return iter(_hyper_names(self._first()))

    def __len__(self) -> int:
        return len(_hyper_names(self._first()))

    def __repr__(self) -> str:
        return repr(dict(self))


_WRAPPER_SPELLING = "opt_func=partial(OptimWrapper, opt=torch.optim.SGD) (or simply opt_func=torch.optim.SGD)"


def torch_opt_func(opt_func: Callable[..., Any]) -> Callable[..., torch.optim.Optimizer]:
    """The ``opt_func(param_groups, lr=...)`` a Learner builds its optimiser with. ``partial(OptimWrapper,
    opt=torch.optim.SGD, momentum=0.9)``, fastai's way of training with a torch optimiser, is read as that
    optimiser (with its keyword arguments): a Learner wraps every optimiser in an :class:`OptimWrapper` itself.

    >>> torch_opt_func(partial(OptimWrapper, opt=torch.optim.SGD, momentum=0.9)).keywords
    {'momentum': 0.9}
    """
    if opt_func is OptimWrapper:
        raise ParameterError(f"opt_func=OptimWrapper: say which torch optimiser it wraps, {_WRAPPER_SPELLING}")
    if not (isinstance(opt_func, partial) and opt_func.func is OptimWrapper):
        return opt_func
    kw = dict(opt_func.keywords)
    given = [k for k in ("opt", "opt_func") if k in kw]
    if opt_func.args or len(given) != 1:
        raise ParameterError(f"opt_func=partial(OptimWrapper, ...) needs the torch optimiser as its one 'opt' keyword "
                             f"argument, as in fastai: {_WRAPPER_SPELLING}")
    opt = kw.pop(given[0])
    if kw.pop("hp_map", None) is not None:
        raise ParameterError("partial(OptimWrapper, hp_map=...): pipekit maps lr/mom/wd to the torch optimiser's own "
                             f"names itself; leave hp_map out: {_WRAPPER_SPELLING}")
    kw.pop("convert_groups", None)  # layer groups always reach the torch optimiser as its param groups
    if not callable(opt) or opt is OptimWrapper or (isinstance(opt, partial) and opt.func is OptimWrapper):
        raise ParameterError(f"partial(OptimWrapper, opt={opt!r}): opt must be a torch optimiser class, "
                             f"{_WRAPPER_SPELLING}")
    return partial(opt, **kw) if kw else opt


#: what a Learner uses of the optimiser its ``opt_func`` builds (all of them a ``torch.optim.Optimizer`` has)
_OPTIMISER_API = ("param_groups", "state", "step", "zero_grad", "state_dict", "load_state_dict")


def _check_built_optimiser(opt_func: Callable[..., Any], opt: Any) -> None:
    """Refuse what ``opt_func(param_groups, lr=...)`` built when it is not an optimiser a Learner can drive (a
    hand-written class with only ``step`` and ``zero_grad``, as chapter 4's ``BasicOptim``), naming what it lacks.

    >>> class BasicOptim:
    ...     def __init__(self, params, lr): self.params, self.lr = list(params), lr
    ...     def step(self): pass
    ...     def zero_grad(self): pass
    >>> _check_built_optimiser(BasicOptim, BasicOptim([], lr=0.1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    pipekit.core.errors.ParameterError: opt_func=BasicOptim built a BasicOptim, which has no param_groups, ...
    """
    missing = [a for a in _OPTIMISER_API if not hasattr(opt, a)]
    if not missing:
        return
    func = opt_func.func if isinstance(opt_func, partial) else opt_func
    name = getattr(func, "__name__", None) or repr(func)
    lacks = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + f" or {missing[-1]}"
    raise ParameterError(
        f"opt_func={name} built a {type(opt).__name__}, which has no {lacks}: a Learner's opt_func(params, lr) must "
        "build a torch.optim.Optimizer (pipekit's Optimizer, SGD, Adam..., or any torch.optim class), or be "
        f"fastai's {_WRAPPER_SPELLING}. Pass the book's opt_func=SGD (from pipekit.learn) to train with a Learner, "
        f"or keep {type(opt).__name__} for a training loop written by hand, as chapter 4 does "
        "(opt.step(); opt.zero_grad() after each batch's loss.backward()).")


class OptimWrapper(HyperParams):
    """A torch optimiser over a model's layer groups, with hyper-parameters settable per group.

    ``splitter(model) -> list[list[Parameter]]`` gives the layer groups (default: one group).
    ``wd_bn_bias=False`` keeps weight decay off the parameters of normalisation layers and off layers' own
    ``bias`` (``nn.Linear.bias``, ``nn.Conv2d.bias``...), as fastai: any other parameter is decayed, whatever its
    name. ``train_bn=True`` keeps normalisation layers trainable when their group is frozen.
    ``hypers`` (one live dict per layer group), :meth:`set_hyper` and :meth:`set_hypers` set hyper-parameters.
    fastai's ``opt=torch.optim.SGD, momentum=0.9`` (the optimiser class and its keyword arguments) is taken in
    place of ``opt_func``, as in a Learner's ``opt_func=partial(OptimWrapper, opt=torch.optim.SGD, momentum=0.9)``
    (see :func:`torch_opt_func`).

    >>> from torch import nn
    >>> from pipekit.learn import Adam, OptimWrapper
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    >>> opt = OptimWrapper(model, Adam, lr=1e-3, splitter=lambda m: [list(m[:2].parameters()), list(m[2].parameters())])
    >>> opt.n_groups, [pg["weight_decay"] for pg in opt.param_groups]   # biases and the norm layer: no decay
    (2, [0.01, 0.0, 0.01, 0.0])
    >>> opt.freeze_to(1); [p.requires_grad for p in (model[0].weight, model[1].weight, model[2].weight)]
    [False, True, True]
    """

    @overload
    def __init__(self, model: nn.Module, opt_func: Callable[..., torch.optim.Optimizer], lr: float = 1e-3,
                 splitter: Callable[[nn.Module], list[list[nn.Parameter]]] | None = None,
                 wd_bn_bias: bool = False, train_bn: bool = True) -> None: ...

    @overload
    def __init__(self, model: nn.Module, *, opt: Callable[..., torch.optim.Optimizer], lr: float = 1e-3,
                 splitter: Callable[[nn.Module], list[list[nn.Parameter]]] | None = None,
                 wd_bn_bias: bool = False, train_bn: bool = True, **opt_kwargs: Any) -> None: ...

    def __init__(self, model: nn.Module, opt_func: Callable[..., torch.optim.Optimizer] | None = None,
                 lr: float = 1e-3, splitter: Callable[[nn.Module], list[list[nn.Parameter]]] | None = None,
                 wd_bn_bias: bool = False, train_bn: bool = True, *,
                 opt: Callable[..., torch.optim.Optimizer] | None = None, **opt_kwargs: Any) -> None:
        if opt is None and opt_kwargs:
            raise ParameterError(f"OptimWrapper: unexpected keyword argument(s) {sorted(opt_kwargs)}; keyword "
                                 f"arguments of the torch optimiser go with fastai's opt=, {_WRAPPER_SPELLING}")
        if opt is not None:
            if opt_func is not None:
                raise ParameterError(f"OptimWrapper: give the optimiser once, as opt_func or as fastai's opt= with "
                                     f"its keyword arguments, not both: {_WRAPPER_SPELLING}")
            opt_func = torch_opt_func(partial(OptimWrapper, opt=opt, **opt_kwargs))
        if opt_func is None:
            raise ParameterError(f"OptimWrapper: say which torch optimiser it wraps, {_WRAPPER_SPELLING}")
        groups = [list(g) for g in (splitter(model) if splitter is not None else [model.parameters()])]
        if not groups or not any(groups):
            raise ParameterError("the splitter returned no parameters; it must return a list of parameter lists")
        seen: dict[int, int] = {}
        for gi, g in enumerate(groups):
            for p in g:
                if id(p) in seen:
                    raise ParameterError(f"splitter: a parameter appears in groups {seen[id(p)]} and {gi}; "
                                         "each parameter must be in exactly one group")
                seen[id(p)] = gi
        missing = [n for n, p in model.named_parameters() if id(p) not in seen]
        if missing:
            raise ParameterError(f"splitter left {len(missing)} model parameters out of every group "
                                 f"(e.g. {missing[:3]}); they would never train. Return all parameters.")
        norm = norm_params(model)
        no_decay_ids = set() if wd_bn_bias else _norm_bias_params(model)
        self.norm_ids, self.layer_groups, self.train_bn = norm, groups, train_bn
        torch_groups: list[dict[str, Any]] = []
        self._owner: list[int] = []  # layer-group index of each torch param group
        self._no_wd: list[bool] = []
        for gi, g in enumerate(groups):
            parts = [([p for p in g if id(p) not in no_decay_ids], False),
                     ([p for p in g if id(p) in no_decay_ids], True)]
            for ps, no_wd in parts:
                if ps:
                    torch_groups.append({"params": ps})
                    self._owner.append(gi)
                    self._no_wd.append(no_wd)
        self._first = [self._owner.index(gi) for gi in range(len(groups)) if gi in self._owner]
        if len(self._first) != len(groups):
            raise ParameterError("splitter: every parameter group must hold at least one parameter; "
                                 f"got group sizes {[len(g) for g in groups]}")
        self.opt = opt_func(torch_groups, lr=lr)
        _check_built_optimiser(opt_func, self.opt)
        for pg, no_wd in zip(self.opt.param_groups, self._no_wd):
            if no_wd:
                pg["weight_decay"] = 0.0
        # built without momentum (plain SGD, RMSProp's default): schedules' momentum is not theirs to add
        inner = self.opt.opt if isinstance(self.opt, Lookahead) else self.opt
        self._no_mom = [bool(getattr(inner, "momentum_free", False)) or (pg.get("momentum") == 0 and "betas" not in pg)
                        for pg in self.opt.param_groups]
        self._parts = [[i for i, o in enumerate(self._owner) if o == gi] for gi in range(len(groups))]
        self.frozen_to = 0
        #: the ``frozen_to`` of the last state loaded (``learn.load``), until freezing is set again or a fit starts: a
        #: fit resumed from a checkpoint (``start_epoch > 0``) trains the layer groups its fit trained
        self.resume_frozen_to: int | None = None
        #: a torch.amp.GradScaler while fp16 mixed precision is on (set by MixedPrecision)
        self.scaler: torch.amp.GradScaler | None = None

    @property
    def n_groups(self) -> int:
        return len(self.layer_groups)

    def __repr__(self) -> str:
        """The optimiser (a step-function :class:`Optimizer` with its step functions, a :class:`Lookahead` with the one
        it wraps), the layer groups (and ``frozen_to``, how many are frozen, when some are) and their
        hyper-parameters (:attr:`hypers`): once when every group has the same, else one dict per group.

        >>> from torch import nn
        >>> OptimWrapper(nn.Linear(2, 1), Adam, lr=0.01)
        OptimWrapper(AdamW, 1 layer group: {'lr': 0.01, 'mom': 0.9, 'sqr_mom': 0.99, 'eps': 1e-05, 'wd': 0.01})
        """

        def named(opt: Any) -> str:
            if isinstance(opt, Lookahead):
                return f"Lookahead({named(opt.opt)})"
            if isinstance(opt, Optimizer):
                steps = ", ".join(getattr(getattr(cb, "func", cb), "__name__", type(cb).__name__) for cb in opt.cbs)
                return f"Optimizer({steps})"
            return type(opt).__name__

        n = self.n_groups
        hypers = [repr(h) for h in self.hypers]
        shown = hypers[0] if n == 1 else f"each {hypers[0]}" if len(set(hypers)) == 1 else f"[{', '.join(hypers)}]"
        frozen = f", frozen_to={self.frozen_to}" if self.frozen_to else ""
        return f"OptimWrapper({named(self.opt)}, {n} layer group{'' if n == 1 else 's'}{frozen}: {shown})"

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The torch optimiser's parameter groups: a layer group's parameters can be two of them (those with weight
        decay, then its biases and norm layers' without, unless ``wd_bn_bias``), so ``param_groups[i]`` is not
        layer group ``i`` as in fastai. Read and set a layer group's hyper-parameters with ``hypers[i]`` /
        ``lrs`` and ``set_hyper(name, value)`` (a value, a list of one per layer group, or a slice)."""
        return self.opt.param_groups

    @property
    def lrs(self) -> list[float]:
        """Learning rate of each layer group (cheap: read once per batch by the Recorder)."""
        return [self.opt.param_groups[i]["lr"] for i in self._first]

    @property
    def moms(self) -> list[float | None]:
        """Momentum of each layer group (Adam's beta1, SGD's momentum)."""
        return [_get_group(self.opt.param_groups[i], "mom") for i in self._first]

    def _hyper_group(self, gi: int) -> dict[str, Any]:
        return self.opt.param_groups[self._first[gi]]

    def _set_layer_group(self, gi: int, name: str, value: Any) -> None:
        """Set ``name`` in the torch param groups of layer group ``gi`` (weight decay stays 0 on the no-decay
        parameters, momentum on an optimiser built without it)."""
        value = _as_float(value)
        for i in self._parts[gi]:
            if (name == "wd" and self._no_wd[i]) or (name == "mom" and self._no_mom[i]):
                continue
            _set_group(self.opt.param_groups[i], name, value)

    def freeze_to(self, n: int) -> None:
        """Freeze layer groups ``[:n]`` (negative counts from the end); normalisation stays trainable."""
        check("freeze_to", n=(n, Interval(-self.n_groups, self.n_groups, integer=True)))
        n = int(n) if n >= 0 else self.n_groups + int(n)
        self.frozen_to, self.resume_frozen_to = n, None
        for gi, g in enumerate(self.layer_groups):
            for p in g:
                trainable = gi >= n or (self.train_bn and id(p) in self.norm_ids)
                p.requires_grad_(trainable)
                if not trainable:
                    p.grad = None

    def clear_state(self) -> None:
        """Forget what the optimiser learned over past steps (Adam's moving averages and step counts, momentum,
        Lookahead's slow weights): the next step starts as the first one. ``Learner.freeze_to`` (``freeze``,
        ``unfreeze``) calls it, as fastai's does, so layers trained after a change of freezing start afresh rather
        than with moments from fits ago. Hyper-parameters are kept."""
        for opt in (self.opt, self.opt.opt) if isinstance(self.opt, Lookahead) else (self.opt,):
            opt.state.clear()

    def zero_grad(self) -> None:
        if type(self.opt).zero_grad is torch.optim.Optimizer.zero_grad:
            # what torch's zero_grad(set_to_none=True) does, without its per-call profiler record
            # (a noticeable share of a small model's step)
            for g in self.opt.param_groups:
                for p in g["params"]:
                    p.grad = None
        else:
            self.opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        if self.scaler is not None:  # skips the step when fp16 gradients overflowed
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state and the freezing it was trained with (a loaded one's, until freezing is set again
        or a fit starts: ``lr_find`` between ``learn.load`` and the resumed fit keeps it)."""
        frozen = self.frozen_to if self.resume_frozen_to is None else self.resume_frozen_to
        return {"opt": self.opt.state_dict(), "frozen_to": frozen}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Load a :meth:`state_dict`. Which parameters train is left as it is (as fastai's ``learn.load``): a
        ``learn.unfreeze()`` before ``learn.load(name)`` stays. The state's ``frozen_to`` is kept as
        ``resume_frozen_to``, which only a fit resumed from it (``fit(..., start_epoch=learn.resume_epoch)``)
        applies, unless freezing is set in between."""
        self.opt.load_state_dict(sd["opt"])
        self.resume_frozen_to = int(sd.get("frozen_to", 0))

