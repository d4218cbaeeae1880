"""``learn.summary()``: each layer's output shape and parameter count for one batch, and what trains."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import torch
from torch import nn

from pipekit.data.loader import batch_parts
from pipekit.learn.registry import unwrapped

if TYPE_CHECKING:
    from pipekit.learn.learner import Learner

__all__ = ["SummaryText", "summary"]


def _shape(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return "x".join(str(d) for d in out.shape)
    if isinstance(out, (tuple, list)) and out:
        return _shape(out[0]) + (f" (+{len(out) - 1})" if len(out) > 1 else "")
    return "-"


class SummaryText(str):
    """The text of ``learn.summary()``: a ``str`` whose repr is the text itself, so a notebook cell or a REPL
    shows the table (not an escaped string), and ``print``, slicing or writing it to a file work as on any
    ``str``.

    >>> from pipekit.learn.summary import SummaryText
    >>> text = SummaryText("layer  params\\n0      1,570")
    >>> text                                          # shown as the table, not as '...\\n...'
    layer  params
    0      1,570
    >>> isinstance(text, str), text.splitlines()[1]
    (True, '0      1,570')
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return str.__str__(self)


@overload
def summary(learn: Learner, show: Literal[False] = ..., max_rows: int = ...) -> SummaryText: ...
@overload
def summary(learn: Learner, show: Literal[True], max_rows: int = ...) -> None: ...
@overload
def summary(learn: Learner, show: bool = ..., max_rows: int = ...) -> SummaryText | None: ...


def summary(learn: Learner, show: bool = False, max_rows: int = 200) -> SummaryText | None:
    """``learn.summary()``: each layer's output shape and parameter count on one training batch, and what
    is frozen.

    Returned as a :class:`SummaryText` (a ``str``) and printed nowhere, as fastai's is: a notebook cell or a
    REPL shows it as the table, and a script prints it with ``print(learn.summary())`` or writes it to a
    file. ``show=True`` prints the table and returns ``None`` (so it is still shown only once).

    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import Learner
    >>> from pipekit.vision import ImageDataLoaders
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    >>> learn.summary()   # doctest: +NORMALIZE_WHITESPACE
    Sequential (input 64x1x28x28)
    layer                       type              output                  params  trainable
    0                           Flatten           64x784                       0
    1                           Linear            64x2                     1,570  yes
    Total params: 1,570  trainable: 1,570  frozen: 0
    Loss: CrossEntropyLossFlat
    """
    # the model a torch.compile, DataParallel or DDP wrapper runs, under its own layer names, run eagerly (a
    # forward pass through the compiled wrapper would build its graph only to read shapes)
    model: nn.Module = unwrapped(learn.model)
    rows: list[tuple[str, str, str, int, bool]] = []
    if not getattr(learn.dls, "loaders", None):
        # a loaded learner keeps no data: its layers and parameters, without output shapes
        for name, m in model.named_modules():
            if not list(m.children()):
                ps = list(m.parameters(recurse=False))
                rows.append((name, type(m).__name__, "-", sum(p.numel() for p in ps), any(p.requires_grad for p in ps)))
        return _table(learn, model, rows, "no data in this learner: output shapes need a batch", show, max_rows)
    xb = batch_parts(learn.dls.train)[: learn.dls.n_inp]
    xb = tuple(t.to(learn.device) if isinstance(t, torch.Tensor) else t for t in xb)

    leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]
    # modules of layers that hold parameters of their own too (a learnable scale, a ViT's class token)
    holders = [(name, m) for name, m in model.named_modules()
               if list(m.children()) and list(m.parameters(recurse=False))]
    calls: dict[str, int] = {}  # each layer's number of calls, in the order of their first call

    def hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def fn(module: nn.Module, inp: Any, out: Any) -> None:
            if name not in calls:  # its first output
                ps = list(module.parameters(recurse=False))
                rows.append((name, type(module).__name__, _shape(out), sum(p.numel() for p in ps),
                             any(p.requires_grad for p in ps)))
            calls[name] = calls.get(name, 0) + 1
        return fn

    hooks = [m.register_forward_hook(hook(name)) for name, m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*xb)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return _table(learn, model, _once_each(rows, calls, leaves, holders), f"input {', '.join(_shape(x) for x in xb)}", show,
                  max_rows)


def _once_each(rows: list[tuple[str, str, str, int, bool]], calls: dict[str, int],
               leaves: list[tuple[str, nn.Module]],
               holders: Sequence[tuple[str, nn.Module]] = ()) -> list[tuple[str, str, str, int, bool]]:
    """The rows of the layers a forward pass called, once each in the order of their first call, the type marked
    with the number of calls of a layer called several times (a text encoder's LSTM, once per chunk of text: ``LSTM
    x16``); and the layers of parameters it did not call (an embedding whose weights the model reads itself), with
    no output, each before the first called layer that follows it in the model; a parameter two layers share is
    counted in the first of them, so the rows add up to the total. A module of layers holding parameters of its own
    too (``holders``: a learnable scale, a ViT's class token) has a row of those, ``<name> (own)``, before its first
    layer's."""
    out = [(name, f"{kind} x{calls[name]}" if calls[name] > 1 else kind, shape, n, tr)
           for name, kind, shape, n, tr in rows]
    position = {name: i for i, (name, *_) in enumerate(out)}
    waiting: list[tuple[str, str, str, int, bool]] = []
    placed: dict[int, list[tuple[str, str, str, int, bool]]] = {}
    for name, m in leaves:
        if name in position:
            if waiting:
                placed.setdefault(position[name], []).extend(waiting)
                waiting = []
        elif (ps := list(m.parameters(recurse=False))):
            waiting.append((name, type(m).__name__, "- (not called)", sum(p.numel() for p in ps),
                            any(p.requires_grad for p in ps)))
    ordered = [r for i, row in enumerate(out) for r in (*placed.get(i, ()), row)] + waiting
    # a parameter shared by two layers (a language model's decoder tied to its embedding) counts once, in the
    # first row holding it, as the total does
    for holder, m in holders:  # before the first row of its layers (the model's own, first)
        own = list(m.parameters(recurse=False))
        row = (f"{holder or type(m).__name__} (own)", type(m).__name__, "-", sum(p.numel() for p in own),
               any(p.requires_grad for p in own))
        at = next((i for i, (name, *_) in enumerate(ordered) if not holder or name.startswith(f"{holder}.")),
                  len(ordered))
        ordered.insert(at, row)
    modules = {**dict(leaves), **{f"{h or type(m).__name__} (own)": m for h, m in holders}}
    rows_once = []
    seen: set[int] = set()
    for name, kind, shape, _, tr in ordered:
        ps = [p for p in modules[name].parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in ps)
        rows_once.append((name, kind, shape, sum(p.numel() for p in ps), tr))
    return rows_once


def _table(learn: Learner, model: nn.Module, rows: list[tuple[str, str, str, int, bool]], what: str, show: bool,
           max_rows: int) -> SummaryText | None:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines = [f"{type(model).__name__} ({what})",
             f"{'layer':<28}{'type':<18}{'output':<20}{'params':>10}  trainable"]
    for name, kind, shape, n, tr in rows[:max_rows]:
        lines.append(f"{name[:27]:<28}{kind[:17]:<18}{shape[:19]:<20}{n:>10,}  {'yes' if tr else ('no' if n else '')}")
    if len(rows) > max_rows:
        lines.append(f"... {len(rows) - max_rows} more layers")
    lines.append(f"Total params: {total:,}  trainable: {trainable:,}  frozen: {total - trainable:,}")
    opt = learn.opt
    if opt is not None:
        lines.append(f"Optimiser: {type(opt.opt).__name__}, {opt.n_groups} parameter group(s), first "
                     f"{opt.frozen_to} frozen")
    lines.append(f"Loss: {getattr(learn.loss_func, '__name__', type(learn.loss_func).__name__)}")
    text = SummaryText("\n".join(lines))
    if show:
        print(text)
        return None
    return text
