"""Architectures: how an exported model is rebuilt without unpickling code.

An exported learner stores the model's *architecture name* and its *constructor arguments as data*,
next to the weights in safetensors. Loading looks the name up in pipekit's registry (kind "arch"),
calls the registered class or factory with the stored arguments, then loads the weights. Nothing is
unpickled, so a model file cannot run code; the price is that every architecture you want to export
must be registered.

Register a ``nn.Module`` class or a factory function (anything returning an ``nn.Module``) once, at
import time of the module that defines it (``@register_arch("tiny_mlp")``, see :func:`register_arch`).
Calling a registered class or factory records its bound arguments on the returned module
(``arch_spec(model)``), and ``build_arch(*arch_spec(model))`` builds a fresh one. The arguments are stored with ``pipekit.core.component.to_data`` (see
:func:`config_to_data`): numbers, text, lists (tuples come back as lists), arrays, the torch.nn
classes pipekit lists (activations, norms, pooling, dropout, layers: ``act_cls=nn.ReLU`` is stored by
name) and modules that themselves came from a registered architecture. Anything else makes
``learn.export`` fail with an error naming the argument.

A model assembled by hand (e.g. ``nn.Sequential(body, head)``) has no spec; wrap its construction in
a registered factory (the usual way for ``vision_learner``-style builders) or call
``set_arch_spec(model, name, config)`` with a registered name whose factory rebuilds it.
"""
from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any, TypeVar, overload

import numpy as np
from torch import nn

from pipekit.core.component import Component, from_data, to_data
from pipekit.core.errors import ExportError, ParameterError, UnknownNameError
from pipekit.core.registry import lookup, register, registered

__all__ = [
    "register_arch", "build_arch", "arch_spec", "set_arch_spec", "registered_archs", "UnknownArchError",
    "ArchSpec", "config_to_data", "config_from_data", "unwrapped", "COMPILED_PREFIX",
]

_SPEC_ATTR = "_pipekit_arch_spec"

# the torch.nn classes an architecture's arguments may name: a list pipekit writes, never any attribute of torch.nn
for _cls in (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
             nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softmax, nn.LogSoftmax,
             nn.Identity, nn.Flatten, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
             nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
             nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
             nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
             nn.AlphaDropout, nn.Linear, nn.Bilinear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
             nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Embedding, nn.EmbeddingBag, nn.LSTM, nn.GRU, nn.RNN):
    register(_cls, name=f"torch.nn.{_cls.__name__}", kind="torch_module")


class UnknownArchError(UnknownNameError):
    """Raised when a stored architecture name has no registered class or factory.

    >>> from pipekit.learn import UnknownArchError, build_arch
    >>> try:
    ...     build_arch("my_unet", {"n_out": 2})
    ... except UnknownArchError as e:
    ...     print(type(e).__name__, isinstance(e, KeyError), str(e).split(". ")[0])
    UnknownArchError True architecture 'my_unet' is not registered, so the model cannot be rebuilt
    """


def registered_archs() -> list[str]:
    """Names of every registered architecture, sorted.

    >>> from pipekit.learn import registered_archs
    >>> names = registered_archs()
    >>> {"mlp", "simple_cnn"} <= set(names), names == sorted(names)     # pipekit's own, and any you registered
    (True, True)
    """
    return sorted(registered("arch"))


def _bind_config(fn: Callable[..., Any], args: tuple, kwargs: dict) -> dict[str, Any]:
    """The arguments of a call of ``fn`` (a class: of its constructor), defaults included."""
    sig = inspect.signature(fn)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    config: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                config["*args"] = list(value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            config.update(value)
        else:
            config[name] = value
    return config


def _record(module: Any, name: str, config: dict[str, Any]) -> None:
    if isinstance(module, nn.Module):
        # object.__setattr__ keeps nn.Module from treating the spec as a submodule/buffer
        object.__setattr__(module, _SPEC_ATTR, (name, config))


#: a registered architecture: an ``nn.Module`` class or a factory, which ``register_arch`` gives back as it is typed
_Arch = TypeVar("_Arch", bound=Callable[..., Any])


@overload
def register_arch(name: _Arch, fn: None = None, *, overwrite: bool = False) -> _Arch: ...


@overload
def register_arch(name: str | None = None, fn: None = None, *,
                  overwrite: bool = False) -> Callable[[_Arch], _Arch]: ...


@overload
def register_arch(name: str | None, fn: _Arch, *, overwrite: bool = False) -> _Arch: ...


def register_arch(name: str | Callable[..., Any] | None = None, fn: Callable[..., Any] | None = None,
                  *, overwrite: bool = False) -> Any:
    """Register an ``nn.Module`` class or a factory so exported models using it can be rebuilt.

    Use as ``@register_arch()``, ``@register_arch("name")``, bare ``@register_arch`` or as a call
    ``register_arch("name", fn)``. Returns the class/function (a factory is wrapped so that calling it
    records its arguments; a class gets its ``__init__`` wrapped the same way). Registering again under
    the same name is accepted for the same definition (a re-run notebook cell) or with ``overwrite``.

    >>> from torch import nn
    >>> @register_arch("doc_linear")
    ... def doc_linear(n_in: int, n_out: int) -> nn.Module:
    ...     return nn.Linear(n_in, n_out)
    >>> arch_spec(doc_linear(3, 2))
    ('doc_linear', {'n_in': 3, 'n_out': 2})
    """
    if callable(name) and fn is None:  # bare @register_arch
        return register_arch(None, name, overwrite=overwrite)
    if name is not None and not isinstance(name, str):
        raise ParameterError(f"register_arch: `name` must be a str or None, got {type(name).__name__}")

    def deco(obj: Any) -> Any:
        arch_name = name or obj.__name__
        if not callable(obj) or (isinstance(obj, type) and not issubclass(obj, nn.Module)):
            raise ParameterError(f"register_arch({arch_name!r}): expected an nn.Module class or a factory function, "
                                 f"got {getattr(obj, '__name__', type(obj).__name__)}, which is not an nn.Module")
        prev = registered().get(arch_name)
        same = prev is not None and (prev.__module__, prev.__qualname__) == (obj.__module__, obj.__qualname__)
        if prev is not None and not (overwrite or same):
            raise ParameterError(f"register_arch: the name {arch_name!r} is already registered for "
                                 f"{prev.__module__}.{prev.__qualname__}; pick another name or pass overwrite=True")
        if isinstance(obj, type):
            orig_init = inspect.getattr_static(obj, "__init__")
            if getattr(orig_init, "_pipekit_arch", False):  # registered again: wrap the original once
                orig_init = orig_init.__wrapped__

            @functools.wraps(orig_init)
            def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
                orig_init(self, *args, **kwargs)
                # only the exact class records itself: an unregistered subclass must not pose as its parent
                if type(self) is obj:
                    _record(self, arch_name, _bind_config(obj, args, kwargs))

            __init__._pipekit_arch = True  # type: ignore[attr-defined]
            obj.__init__ = __init__  # type: ignore[misc]
            return register(obj, name=arch_name, kind="arch", replace=True)

        @functools.wraps(obj)
        def factory(*args: Any, **kwargs: Any) -> Any:
            module = obj(*args, **kwargs)
            _record(module, arch_name, _bind_config(obj, args, kwargs))
            return module

        return register(factory, name=arch_name, kind="arch", replace=True)

    return deco(fn) if fn is not None else deco


#: what ``torch.compile``'s wrapper puts before each of the model's state names (``_orig_mod.0.weight``)
COMPILED_PREFIX = "_orig_mod."


def unwrapped(model: nn.Module) -> nn.Module:
    """The model a wrapper runs: ``DistributedDataParallel``'s and ``DataParallel``'s ``.module`` and
    ``torch.compile``'s ``._orig_mod`` (one around the other), or ``model`` itself. Its parameters are the wrapper's, under their own names
    (``0.weight``, where the compiled wrapper's state says ``_orig_mod.0.weight``): what a file stores, what a
    splitter cuts into layer groups and what ``load_state_dict`` fills.

    >>> m = nn.Linear(2, 1)
    >>> unwrapped(m) is m
    True
    """
    # torch's compiler module is imported only by torch.compile: where it is not loaded no model is compiled (and
    # importing it here would cost about a second)
    compiled = getattr(sys.modules.get("torch._dynamo.eval_frame"), "OptimizedModule", None)
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif compiled is not None and isinstance(model, compiled) and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def arch_spec(model: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """The ``(name, config)`` recorded when ``model`` (or the model a DDP, DataParallel or compiled wrapper runs,
    :func:`unwrapped`) was built by a registered arch, else None.

    >>> from torch import nn
    >>> from pipekit.learn import simple_cnn
    >>> from pipekit.learn import arch_spec
    >>> arch_spec(simple_cnn(n_in=1, n_out=2, channels=[4, 8]))
    ('simple_cnn', {'n_in': 1, 'n_out': 2, 'channels': [4, 8]})
    >>> arch_spec(nn.Linear(3, 2)) is None          # built by hand: an export cannot rebuild it
    True
    """
    spec = model.__dict__.get(_SPEC_ATTR)
    inner = unwrapped(model)
    return arch_spec(inner) if spec is None and inner is not model else spec


def set_arch_spec(model: nn.Module, name: str, config: dict[str, Any]) -> nn.Module:
    """Attach a spec by hand: ``build_arch(name, config)`` must rebuild an equivalent module.

    >>> from torch import nn
    >>> from pipekit.learn.nets import ConcatPool2d, ConvBlock
    >>> from pipekit.learn import arch_spec, build_arch, set_arch_spec
    >>> model = nn.Sequential(nn.Sequential(ConvBlock(1, 4)), nn.Sequential(ConcatPool2d(), nn.Linear(8, 2)))
    >>> _ = set_arch_spec(model, "simple_cnn", {"n_in": 1, "n_out": 2, "channels": [4]})   # what simple_cnn builds
    >>> arch_spec(model)
    ('simple_cnn', {'n_in': 1, 'n_out': 2, 'channels': [4]})
    >>> build_arch(*arch_spec(model)).load_state_dict(model.state_dict())    # the rebuilt model takes its weights
    <All keys matched successfully>
    """
    _arch(name)
    _record(model, name, dict(config))
    return model


def _arch(name: str) -> Callable[..., nn.Module]:
    try:
        return lookup(name, "arch")
    except UnknownNameError:
        raise UnknownArchError(
            f"architecture {name!r} is not registered, so the model cannot be rebuilt. Import the module that "
            f"defines it (it must run `@pipekit.learn.register_arch({name!r})` on the class or factory) before "
            f"loading. Registered: {', '.join(registered_archs()) or 'none'}") from None


def build_arch(name: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Rebuild a model from its registered ``name`` and ``config`` (see :func:`config_from_data`).

    >>> from pipekit.learn import MLP
    >>> m = build_arch("mlp", {"n_in": 4, "n_out": 3, "layers": [8]})
    >>> type(m).__name__
    'MLP'
    """
    fn = _arch(name)
    config = dict(config or {})
    args = list(config.pop("*args", []))
    params = inspect.signature(fn).parameters.values()
    P = inspect.Parameter
    # positional-only parameters, and every parameter before a used *args, must be passed by position
    lead: list[Any] = []
    if args or any(p.kind is P.POSITIONAL_ONLY for p in params):
        for p in params:
            if p.kind is P.VAR_POSITIONAL or (not args and p.kind is not P.POSITIONAL_ONLY):
                break
            if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD) and p.name in config:
                lead.append(config.pop(p.name))
    return fn(*lead, *args, **config)


# ---------------------------------------------------------------- configs as data
class ArchSpec(Component):
    """A module built by a registered architecture, inside another one's arguments: stored as its spec.

    >>> from pipekit.learn import MLP
    >>> from pipekit.learn.registry import ArchSpec, config_to_data
    >>> data = config_to_data({"head": MLP(4, 2, layers=[8])})     # a module argument is stored as its spec
    >>> data["head"]["class"], data["head"]["params"]["name"]
    ('pipekit.learn.ArchSpec', 'mlp')
    >>> head = ArchSpec("mlp", {"n_in": 4, "n_out": 2, "layers": [8]}).build()
    >>> type(head).__name__, [tuple(p.shape) for p in head.parameters()][0]
    ('MLP', (8, 4))
    """

    registry_kind = "arch_spec"

    def __init__(self, name: str, config: dict[str, Any]):
        self.name, self.config = name, config

    def build(self) -> nn.Module:
        return build_arch(self.name, _modules(self.config))


def _specs(value: Any, where: str) -> Any:
    """``value`` with every module replaced by its :class:`ArchSpec` (a module without one is named)."""
    if isinstance(value, dict):
        return {k: _specs(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_specs(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, nn.Module):
        spec = arch_spec(value)
        if spec is None:
            raise ExportError(f"{where} is a {type(value).__name__} module that no registered architecture built, so "
                              "it cannot be stored; build it through a registered class or factory")
        return ArchSpec(spec[0], _specs(spec[1], f"{where}<{spec[0]}>"))
    return value


def _modules(value: Any) -> Any:
    if isinstance(value, ArchSpec):
        return value.build()
    if isinstance(value, dict):
        return {k: _modules(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_modules(v) for v in value]
    return value


def config_to_data(config: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
                   where: str = "config") -> Any:
    """An architecture's recorded arguments as data (``to_data``); an :class:`ExportError` names a bad one.

    >>> config_to_data({"n_in": 2, "act": nn.ReLU, "sizes": (4, 8)})
    {'n_in': 2, 'act': {'__ref__': 'torch.nn.ReLU'}, 'sizes': [4, 8]}
    """
    return to_data(_specs(config, where), arrays, where)


def config_from_data(data: Any, arrays: dict[str, np.ndarray] | None = None) -> Any:
    """Inverse of :func:`config_to_data`: registered torch.nn classes and nested architectures rebuilt.

    >>> from torch import nn
    >>> from pipekit.learn import MLP
    >>> from pipekit.learn.registry import config_from_data, config_to_data
    >>> data = config_to_data({"act": nn.ReLU, "sizes": (4, 8), "head": MLP(4, 2, layers=[8])})
    >>> config = config_from_data(data)
    >>> config["act"] is nn.ReLU, config["sizes"], type(config["head"]).__name__    # tuples come back as lists
    (True, [4, 8], 'MLP')
    """
    return _modules(from_data(data, arrays))
