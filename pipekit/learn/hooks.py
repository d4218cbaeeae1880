"""Hooks: what a layer computed (its activations, or their gradients) kept for you to read, as the book's
class activation maps need. ``hook_output(layer)`` keeps a layer's latest output in ``.stored``; with
``grad=True``, the gradients flowing back into it. ``Hooks``/``hook_outputs`` do the same for several layers,
and ``HookCallback`` hooks layers for the length of a fit (``ActivationStats`` is one). Every hook is removed
by ``remove()`` or at the end of its ``with`` block.

>>> import torch
>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
>>> with hook_output(model[1]) as hook:
...     _ = model(torch.randn(5, 3))
>>> hook.stored.shape
torch.Size([5, 4])
>>> with hook_output(model[0], grad=True) as hook_g:
...     model(torch.randn(5, 3, requires_grad=True)).sum().backward()
>>> hook_g.stored[0].shape
torch.Size([5, 4])
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from pipekit.core.errors import ParameterError
from pipekit.core.validate import POSITIVE_SIZES, Interval, Is, check
from pipekit.learn.callbacks.core import Callback

__all__ = ["Hook", "Hooks", "hook_output", "hook_outputs", "HookCallback", "has_params", "leaf_modules",
           "in_channels", "dummy_eval", "model_sizes", "num_features_model"]

HookFunc = Callable[[nn.Module, Any, Any], Any]


def _detach(x: Any, cpu: bool) -> Any:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return x.cpu() if cpu else x
    if isinstance(x, (list, tuple)):
        return type(x)(_detach(v, cpu) for v in x)
    return x


def _output_items(out: Any) -> list[Any]:
    """What a module output is made of, as a gradient hook reports it: the tensor itself, a tuple's or list's
    items, a dict's values (in order); nothing for anything else."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (list, tuple)) else []


class _GradPass:
    """The gradients flowing back into what one forward pass of a hooked module output, gathered over a backward
    pass and handed to the hook once, at the end of that backward pass (None for those it computed none of). The
    graph's nodes hold it, and it holds no node: it goes when the graph is freed."""

    def __init__(self, hook: Hook, module: nn.Module, n_items: int):
        self.hook, self.module, self.n_items = hook, module, n_items
        self.tasks: dict[int, tuple[list[Any], dict[int, Any]]] = {}

    def report(self, k: int, grads: dict[int, Any], grad_in: Any) -> None:
        task = torch._C._current_graph_task_id()
        if task not in self.tasks:
            self.tasks[task] = ([None] * self.n_items, {})
            torch.autograd.Variable._execution_engine.queue_callback(lambda: self.finish(task))
        got, grad_ins = self.tasks[task]
        for i, g in grads.items():
            got[i] = g
        if grad_in is not None:
            grad_ins[k] = grad_in

    def finish(self, task: int) -> None:
        got, grad_ins = self.tasks.pop(task)
        # grad_input: that of the node that made the first of the outputs it reached
        self.hook._run(self.module, grad_ins[min(grad_ins)] if grad_ins else (), tuple(got))

    def watch_node(self, k: int, node: Any, items: list[tuple[int, int]]) -> None:
        # a node's hook gets (gradients of its inputs, gradients of its outputs)
        node.register_hook(lambda grad_in, grad_out: self.report(
            k, {i: grad_out[nr] for i, nr in items}, tuple(grad_in)))

    def watch_leaf(self, i: int, t: torch.Tensor) -> None:
        # a leaf (a tensor no operation made, e.g. a model input passed on unchanged) has no node of this graph: a
        # hook on the tensor, taken off at the end of the first backward pass through it
        handle: Any = None

        def on_grad(g: torch.Tensor) -> None:
            torch.autograd.Variable._execution_engine.queue_callback(handle.remove)
            self.report(i, {i: g}, None)

        handle = t.register_hook(on_grad)


def has_params(m: nn.Module) -> bool:
    """Whether ``m`` has parameters of its own (not counting its children's).

    >>> from torch import nn
    >>> from pipekit.learn.hooks import has_params
    >>> has_params(nn.Linear(2, 3)), has_params(nn.ReLU()), has_params(nn.Sequential(nn.Linear(2, 3)))
    (True, False, False)
    """
    return any(True for _ in m.parameters(recurse=False))


def leaf_modules(model: nn.Module, include_paramless: bool = False) -> list[nn.Module]:
    """The modules of ``model`` without children (conv, linear, norm layers...), those with parameters unless
    ``include_paramless``: what ``HookCallback`` hooks by default.

    >>> from torch import nn
    >>> from pipekit.learn.hooks import leaf_modules
    >>> model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()), nn.Flatten(), nn.Linear(4 * 26 * 26, 2))
    >>> [type(m).__name__ for m in leaf_modules(model)]
    ['Conv2d', 'Linear']
    >>> [type(m).__name__ for m in leaf_modules(model, include_paramless=True)]
    ['Conv2d', 'ReLU', 'Flatten', 'Linear']
    """
    return [m for m in model.modules() if not list(m.children()) and (include_paramless or has_params(m))]


class Hook:
    """Calls ``hook_func(module, input, output)`` on every forward pass of ``module`` and keeps what it returns in
    ``stored``. ``is_forward=False``: once per backward pass through it instead, as ``hook_func(module,
    grad_input, grad_output)``. ``grad_output`` holds the gradients of its output, a tuple: one for a tensor, one
    per item for a tuple or list (a dict: per value), in order, None for an item that is not a tensor needing a
    gradient or that the backward pass did not reach (an LSTM's ``(output, (h, c))`` gives ``(grad of output,
    None)``); an output changed in place afterwards (``ReLU(inplace=True)``) still has the gradient of what the
    module output. ``grad_input`` holds the gradients of the inputs of the operation that made the output (its last
    one, of the first output reached), as torch's ``register_backward_hook`` gives them, not of the module's own
    inputs: a ``Linear`` gives (bias, input, weight) gradients. An output that is a leaf tensor (an input passed on
    unchanged, as ``nn.Identity`` does) was made by no operation: its gradient comes from a hook on the tensor,
    kept until the next backward pass through it, and ``grad_input`` is ``()``.
    ``detach`` (default) detaches the tensors first, ``cpu`` moves them to the CPU. A context manager: the hook
    is removed at the end of the ``with`` block, or by ``remove()``: the forward passes after it attach nothing,
    and the backward pass of a graph built while it was on still stores. ``active`` (a function of no arguments),
    when given, says on each pass whether the hook runs: a pass it skips leaves ``stored`` as it was.

    >>> import torch
    >>> from torch import nn
    >>> from pipekit.learn import Hook
    >>> _ = torch.manual_seed(0); model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> with Hook(model[1], lambda m, inp, out: float((out > 0).float().mean())) as hook:   # share of active units
    ...     _ = model(torch.tensor([[1.0, -2.0, 0.5]]))
    >>> hook, hook.stored
    (Hook(output, removed), 0.25)
    """

    def __init__(self, module: nn.Module, hook_func: HookFunc, is_forward: bool = True, detach: bool = True,
                 cpu: bool = False, active: Callable[[], bool] | None = None):
        if not isinstance(module, nn.Module):
            raise ParameterError(f"Hook: module must be an nn.Module (a layer of the model), got {type(module).__name__}")
        if not callable(hook_func):
            raise ParameterError("Hook: hook_func must be a function (module, input, output) -> what to store")
        self.hook_func, self.detach, self.cpu, self.is_forward = hook_func, detach, cpu, is_forward
        self.active = active
        self.stored: Any = None
        self.removed = False
        self._module = module
        # both kinds are a forward hook: a gradient hook puts a hook on the graph nodes that made the output, in each
        # forward pass, so an output changed in place afterwards (a ReLU(inplace=True) after a batch-norm, as in every
        # ResNet block) still reports the gradient of what the module output (torch's module backward hooks refuse
        # that graph); the nodes, and their hooks, go when the graph is freed. No module backward hook is registered.
        self._handle = module.register_forward_hook(self._run if is_forward else self._hook_grad)

    def _run(self, module: nn.Module, inp: Any, out: Any) -> None:
        if self.active is not None and not self.active():
            return
        if self.detach:
            inp, out = _detach(inp, self.cpu), _detach(out, self.cpu)
        self.stored = self.hook_func(module, inp, out)

    def _hook_grad(self, module: nn.Module, inp: Any, out: Any) -> None:
        items = _output_items(out)
        grad_pass = _GradPass(self, module, len(items))
        nodes: dict[int, tuple[Any, list[tuple[int, int]]]] = {}
        for i, t in enumerate(items):
            if not isinstance(t, torch.Tensor) or not t.requires_grad:
                continue  # no graph (torch.no_grad, an output needing no gradient): nothing flows back into it
            if t.grad_fn is None:
                grad_pass.watch_leaf(i, t)
            else:
                nodes.setdefault(id(t.grad_fn), (t.grad_fn, []))[1].append((i, t.output_nr))
        for node, node_items in nodes.values():
            grad_pass.watch_node(node_items[0][0], node, node_items)

    def remove(self) -> None:
        """Take the hook off its module: stored values stay readable, a forward pass after it stores nothing, and
        the backward pass of a graph built while the hook was on still stores its gradients."""
        if not self.removed:
            self._handle.remove()
            self.removed = True

    def __enter__(self) -> Hook:
        return self

    def __exit__(self, *args: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        what = "output" if self.is_forward else "gradient"
        return f"Hook({what}, {'removed' if self.removed else 'active'})"


def _hook_inner(module: nn.Module, inp: Any, out: Any) -> Any:
    return out if isinstance(out, (torch.Tensor, tuple, list)) else list(out)


def hook_output(module: nn.Module, detach: bool = True, cpu: bool = False, grad: bool = False) -> Hook:
    """A hook keeping the latest output of ``module`` in ``.stored`` (``grad=True``: the gradients with
    respect to its output, a tuple, as the book's Grad-CAM reads ``hook.stored[0]``).

    >>> import torch
    >>> from torch import nn
    >>> from pipekit.learn import hook_output
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> hook = hook_output(model[1])
    >>> _ = model(torch.zeros(5, 3)); tuple(hook.stored.shape), hook.stored.requires_grad
    ((5, 4), False)
    >>> hook.remove(); hook
    Hook(output, removed)
    """
    return Hook(module, _hook_inner, is_forward=not grad, detach=detach, cpu=cpu)


class Hooks:
    """One :class:`Hook` per module of ``modules``; ``stored`` is the list of what each keeps. A context
    manager, like ``Hook``.

    >>> import torch
    >>> from torch import nn
    >>> from pipekit.learn import Hooks
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> with Hooks([model[0], model[2]], lambda m, inp, out: tuple(out.shape)) as hooks:
    ...     _ = model(torch.zeros(5, 3))
    >>> hooks, hooks.stored
    (Hooks(2), [(5, 4), (5, 2)])
    """

    def __init__(self, modules: Sequence[nn.Module], hook_func: HookFunc, is_forward: bool = True,
                 detach: bool = True, cpu: bool = False, active: Callable[[], bool] | None = None):
        self.hooks: list[Hook] = []
        try:
            for m in modules:
                self.hooks.append(Hook(m, hook_func, is_forward, detach, cpu, active))
        except BaseException:  # a module refused part-way: the hooks already placed come off with it
            self.remove()
            raise

    def __getitem__(self, i: int) -> Hook:
        return self.hooks[i]

    def __len__(self) -> int:
        return len(self.hooks)

    def __iter__(self) -> Iterator[Hook]:
        return iter(self.hooks)

    @property
    def stored(self) -> list[Any]:
        return [h.stored for h in self.hooks]

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *args: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"Hooks({len(self.hooks)})"


def hook_outputs(modules: Sequence[nn.Module], detach: bool = True, cpu: bool = False, grad: bool = False) -> Hooks:
    """:func:`hook_output` on every module of ``modules``.

    >>> import torch
    >>> from torch import nn
    >>> from pipekit.learn import hook_outputs
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> with hook_outputs(list(model)) as hooks:
    ...     _ = model(torch.zeros(5, 3))
    >>> [tuple(out.shape) for out in hooks.stored]
    [(5, 4), (5, 4), (5, 2)]
    """
    return Hooks(modules, _hook_inner, is_forward=not grad, detach=detach, cpu=cpu)


def in_channels(m: nn.Module) -> int:
    """The number of input channels of ``m``: those of its first convolution or linear layer (``in_features``), in
    the order its layers were registered.

    >>> from torch import nn
    >>> from pipekit.learn import in_channels
    >>> in_channels(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3))), in_channels(nn.Linear(5, 2))
    (3, 5)
    """
    for layer in m.modules():
        if isinstance(layer, nn.modules.conv._ConvNd):
            return int(layer.in_channels)
        if isinstance(layer, nn.Linear):
            return int(layer.in_features)
    raise ParameterError(f"in_channels: {type(m).__name__} has no convolution or linear layer to read its input "
                         "channels from; pass the number of channels yourself (dummy_eval(m, size, n_in=...))")


def dummy_eval(m: nn.Module, size: int | Sequence[int] = (64, 64), n_in: int | None = None, bs: int = 1) -> Any:
    """What ``m`` outputs for a dummy batch of ``bs`` inputs of ``n_in`` channels (default :func:`in_channels`)
    and ``size`` (``(height, width)``, one int for a square, ``()`` for a model taking ``(bs, features)``), all zeros,
    on the device and in the dtype of its parameters: run in eval mode without gradients, each layer's training mode
    restored afterwards (a batch norm frozen with ``.eval()`` inside a training model stays so).

    >>> from torch import nn
    >>> from pipekit.learn import dummy_eval
    >>> body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU())
    >>> tuple(dummy_eval(body, (32, 32)).shape), body.training
    ((1, 8, 15, 15), True)
    """
    sizes: Any = (size, size) if isinstance(size, int) and not isinstance(size, bool) else size
    check("dummy_eval", size=(sizes, Is(lambda v: v == () or POSITIVE_SIZES.accepts(v),
                                        "(height, width), one size, or () for inputs of (bs, features)")),
          n_in=(n_in, Interval(1, None, integer=True, none_ok=True)), bs=(bs, Interval(1, None, integer=True)))
    n_in = in_channels(m) if n_in is None else n_in
    p = next(m.parameters(), None)
    device, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    modes = [(x, x.training) for x in m.modules()]  # each layer's own mode (a batch norm frozen with .eval())
    m.eval()
    try:
        with torch.no_grad():
            return m(torch.zeros(bs, n_in, *sizes, device=device, dtype=dtype))
    finally:
        for x, was in modes:
            x.training = was


def _shape(x: Any) -> Any:
    return x.shape if isinstance(x, torch.Tensor) else type(x)(_shape(v) for v in x) if isinstance(x, (list, tuple)) \
        else x


def model_sizes(m: nn.Module, size: int | Sequence[int] = (64, 64)) -> list[Any]:
    """The shape of what each child layer of ``m`` outputs (``m`` itself when it has none) for a dummy batch of
    one input of ``size`` (see :func:`dummy_eval`): how a body shrinks the image and widens the channels.

    >>> from torch import nn
    >>> from pipekit.learn import model_sizes
    >>> model_sizes(nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2)), (32, 32))
    [torch.Size([1, 8, 15, 15]), torch.Size([1, 8, 15, 15]), torch.Size([1, 16, 7, 7])]
    """
    with hook_outputs(list(m.children()) or [m]) as hooks:
        dummy_eval(m, size)
        return [_shape(h.stored) for h in hooks]


def retry_sizes(run: Callable[[int], Any], sizes: Iterable[int], failed: Callable[[list[str]], Exception]) -> Any:
    """``run(size)`` for each of ``sizes`` in turn (image sizes in pixels a dummy forward pass is tried at), the
    first result that a model computes without a ``RuntimeError``, ``ValueError``, ``IndexError`` or ``TypeError``;
    when every size fails, ``failed(errors)`` is raised, ``errors`` one line per size tried
    (``"<size> px: <error type>: <first line of its message>"``).

    >>> from torch import nn
    >>> from pipekit.learn.hooks import dummy_eval, retry_sizes
    >>> big = nn.Conv2d(3, 5, 40)
    >>> tuple(retry_sizes(lambda s: dummy_eval(big, (s, s)), (32, 64), ValueError).shape)
    (1, 5, 25, 25)
    """
    errors = []
    for s in sizes:
        try:
            return run(s)
        except (RuntimeError, ValueError, IndexError, TypeError) as e:
            errors.append(f"{s} px: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}")
    raise failed(errors)


def num_features_model(m: nn.Module) -> int:
    """The number of channels (features) ``m`` outputs, measured on a dummy batch of 32-pixel images, then of 64,
    128, ... up to 2048 for a model that needs larger ones.

    >>> from torch import nn
    >>> from pipekit.learn import num_features_model
    >>> num_features_model(nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2)))
    16
    """
    n_in = in_channels(m)  # a model without one is said as it is
    return int(retry_sizes(lambda s: model_sizes(m, (s, s))[-1][1], (32 * 2 ** i for i in range(7)),
                           lambda errors: ParameterError(
                               f"num_features_model: {type(m).__name__} fails on every dummy batch of {n_in}-channel "
                               f"images from 32 to 2048 pixels ({'; '.join(errors[:2])}; ...)")))


class HookCallback(Callback):
    """A callback hooking ``modules`` (default: every leaf module with parameters, see :func:`leaf_modules`)
    while training: ``hook(module, input, output)``, which a subclass writes, runs on every forward pass of a
    training batch (every ``every``-th one when given; validation batches too with ``run_valid=True``). The
    hooks are removed when the fit ends (``remove_end=False`` keeps them on: ``remove()`` does it then), and if
    it fails. ``validate`` and ``get_preds`` hook nothing: the fit and epoch events reach it (and a subclass) in
    fits only (``fit_only``, see ``Callback``), so a hook kept on by a fit stays on through them.
    ``is_forward=False`` hooks the backward passes instead: ``hook(module, grad_input, grad_output)``, as
    :class:`Hook` gives them (``grad_output[0]`` the gradient of the output; ``grad_input`` those of the inputs
    of the module's last operation, not of the module's own inputs).

    >>> import torch
    >>> class CountNegatives(HookCallback):
    ...     def before_fit(self):
    ...         super().before_fit(); self.negatives_ = 0
    ...     def hook(self, module, inp, out):
    ...         self.negatives_ += int((out < 0).sum())
    """

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    order = -8  # hooks armed before any forward pass
    run_valid = False
    param_constraints = {"every": Interval(1, None, integer=True, none_ok=True),
                         "modules": Is(lambda ms: ms is None or all(isinstance(m, nn.Module) for m in ms),
                                       "a list of the model's modules, or None")}

    def __init__(self, modules: Sequence[nn.Module] | None = None, every: int | None = None,
                 remove_end: bool = True, is_forward: bool = True, detach: bool = True, cpu: bool = False,
                 include_paramless: bool = False):
        self.modules, self.every, self.remove_end, self.is_forward = modules, every, remove_end, is_forward
        self.detach, self.cpu, self.include_paramless = detach, cpu, include_paramless
        self.check_params()

    def hook(self, module: nn.Module, inp: Any, out: Any) -> Any:
        """What to do with a hooked module's input and output (a subclass writes it)."""
        raise NotImplementedError(f"{type(self).__name__}.hook(module, input, output) is not written")

    def hooked_modules(self) -> list[nn.Module]:
        """The modules hooked: ``modules``, or the model's leaf modules (with parameters unless
        ``include_paramless``)."""
        return list(self.modules) if self.modules is not None else leaf_modules(self.learn.model,
                                                                                self.include_paramless)

    def before_fit(self) -> None:
        # a pass between the hooked batches (a validation batch without run_valid, or one off ``every``) leaves
        # what each hook stored as it was
        self.hooks = Hooks(self.hooked_modules(), self.hook, self.is_forward, self.detach, self.cpu,
                           active=lambda: self._on)
        self._on = False

    def before_batch(self) -> None:
        learn = self.learn
        self._on = not learn.training or self.every is None or learn.train_iter % self.every == 0

    def after_batch(self) -> None:
        self._on = False

    def remove(self) -> None:
        """Take the hooks off the model."""
        hooks = self.__dict__.get("hooks")
        if hooks is not None:
            hooks.remove()

    def release(self) -> None:
        self.remove()

    def after_fit(self) -> None:
        if self.remove_end:
            self.remove()
