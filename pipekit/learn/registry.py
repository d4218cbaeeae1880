"""Architecture registry: how an exported model is rebuilt without unpickling code.

An exported learner stores the model's *architecture name* and its *constructor arguments as JSON*,
next to the weights in safetensors. Loading looks the name up in this registry, calls the registered
class or factory with the stored arguments, then loads the weights. Nothing is unpickled, so a model
file cannot run code; the price is that every architecture you want to export must be registered.

Register a ``nn.Module`` class or a factory function (anything returning an ``nn.Module``) once, at
import time of the module that defines it::

    from torch import nn
    from pipekit.learn import register_arch

    @register_arch("tiny_mlp")             # or @register_arch() to use the class/function name
    class TinyMLP(nn.Module):
        def __init__(self, n_in: int, n_out: int, hidden: int = 32):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
        def forward(self, x):
            return self.net(x)

    model = TinyMLP(4, 2)                   # records ("tiny_mlp", {"n_in": 4, "n_out": 2, "hidden": 32})
    assert arch_spec(model) == ("tiny_mlp", {"n_in": 4, "n_out": 2, "hidden": 32})
    clone = build_arch(*arch_spec(model))   # a fresh TinyMLP(4, 2, hidden=32)

Calling a registered class or factory records its bound arguments on the returned module
(``arch_spec(model)``). Arguments must be JSON-able, with three extra kinds handled for you:
tuples (rebuilt as lists), ``torch.nn`` classes such as ``nn.ReLU`` (stored by name, rebuilt only from
``torch.nn``), and modules that themselves came from a registered architecture (stored as their own
spec, rebuilt recursively). Anything else makes ``learn.export`` fail with an error naming the
argument, so the fix (pass a name or a number instead) is clear.

A model assembled by hand (e.g. ``nn.Sequential(body, head)``) has no spec; wrap its construction in
a registered factory (the usual way for ``vision_learner``-style builders) or call
``set_arch_spec(model, name, config)`` with a registered name whose factory rebuilds it.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, TypeVar

from torch import nn

__all__ = [
    "register_arch", "build_arch", "arch_spec", "set_arch_spec", "registered_archs",
    "UnknownArchError", "arch_config_to_json", "arch_config_from_json",
]

T = TypeVar("T")

_ARCHS: dict[str, Callable[..., nn.Module]] = {}
_SPEC_ATTR = "_pipekit_arch_spec"


class UnknownArchError(KeyError):
    """Raised when a stored architecture name has no registered class or factory."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def registered_archs() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_ARCHS)


def _bind_config(fn: Callable[..., Any], args: tuple, kwargs: dict, skip_self: bool) -> dict[str, Any]:
    sig = inspect.signature(fn)
    if skip_self:
        bound = sig.bind(None, *args, **kwargs)
    else:
        bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    config: dict[str, Any] = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        if skip_self and i == 0:
            continue
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


def register_arch(name: str | Callable[..., Any] | None = None, fn: Callable[..., Any] | None = None,
                  *, overwrite: bool = False) -> Any:
    """Register an ``nn.Module`` class or a factory so exported models using it can be rebuilt.

    Use as ``@register_arch()``, ``@register_arch("name")``, bare ``@register_arch`` or as a call
    ``register_arch("name", fn)``. Returns the class/function (a factory is wrapped so that calling it
    records its arguments; a class gets its ``__init__`` wrapped the same way).

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
        raise TypeError(f"register_arch: `name` must be a str or None, got {type(name).__name__}")

    def deco(obj: Any) -> Any:
        arch_name = name or obj.__name__
        if not callable(obj):
            raise TypeError(f"register_arch({arch_name!r}): expected an nn.Module class or a factory "
                            f"function, got {type(obj).__name__}")
        prev = _ARCHS.get(arch_name)
        if prev is not None and not overwrite and getattr(prev, "__qualname__", None) != obj.__qualname__:
            raise ValueError(f"register_arch: the name {arch_name!r} is already registered for "
                             f"{prev.__module__}.{prev.__qualname__}; pick another name or pass overwrite=True")
        if isinstance(obj, type):
            if not issubclass(obj, nn.Module):
                raise TypeError(f"register_arch({arch_name!r}): class {obj.__name__} is not an nn.Module")
            orig_init = obj.__dict__.get("__init__", obj.__init__)
            if getattr(orig_init, "_pipekit_wrapped", False):
                orig_init = orig_init.__wrapped__

            @functools.wraps(orig_init)
            def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
                orig_init(self, *args, **kwargs)
                # only the exact class records itself: an unregistered subclass must not pose as its parent
                if type(self) is obj:
                    _record(self, arch_name, _bind_config(orig_init, args, kwargs, skip_self=True))

            __init__._pipekit_wrapped = True  # type: ignore[attr-defined]
            obj.__init__ = __init__  # type: ignore[misc]
            _ARCHS[arch_name] = obj
            return obj

        @functools.wraps(obj)
        def factory(*args: Any, **kwargs: Any) -> Any:
            module = obj(*args, **kwargs)
            _record(module, arch_name, _bind_config(obj, args, kwargs, skip_self=False))
            return module

        _ARCHS[arch_name] = factory
        return factory

    return deco(fn) if fn is not None else deco


def arch_spec(model: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """The ``(name, config)`` recorded when ``model`` was built by a registered arch, else None."""
    spec = getattr(model, _SPEC_ATTR, None)
    # DDP / compiled wrappers keep the real model in .module / ._orig_mod
    if spec is None:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            return arch_spec(inner)
    return spec


def set_arch_spec(model: nn.Module, name: str, config: dict[str, Any]) -> nn.Module:
    """Attach a spec by hand: ``build_arch(name, config)`` must rebuild an equivalent module."""
    if name not in _ARCHS:
        raise UnknownArchError(_unknown_msg(name))
    _record(model, name, dict(config))
    return model


def _unknown_msg(name: str) -> str:
    known = ", ".join(registered_archs()) or "none"
    return (f"architecture {name!r} is not registered, so the model cannot be rebuilt. Import the module "
            f"that defines it (it must run `@pipekit.learn.register_arch({name!r})` on the class or "
            f"factory) before loading. Registered: {known}")


def build_arch(name: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Rebuild a model from its registered ``name`` and JSON ``config`` (see ``arch_config_from_json``).

    >>> from pipekit.learn.nets import MLP
    >>> m = build_arch("mlp", {"n_in": 4, "n_out": 3, "layers": [8]})
    >>> type(m).__name__
    'MLP'
    """
    if name not in _ARCHS:
        raise UnknownArchError(_unknown_msg(name))
    fn = _ARCHS[name]
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


# ---------------------------------------------------------------- JSON encoding of configs
def arch_config_to_json(value: Any, where: str = "config") -> Any:
    """Turn a recorded config into JSON-able data, raising a ``TypeError`` that names the bad argument."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [arch_config_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: dict keys must be str to export, got {k!r}")
            out[k] = arch_config_to_json(v, f"{where}.{k}")
        return out
    if isinstance(value, type) and issubclass(value, nn.Module) and getattr(nn, value.__name__, None) is value:
        return {"__torch_nn__": value.__name__}
    if isinstance(value, nn.Module):
        spec = arch_spec(value)
        if spec is not None:
            return {"__arch__": spec[0], "config": arch_config_to_json(spec[1], f"{where}<{spec[0]}>")}
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return value.item()
    raise TypeError(
        f"{where} = {value!r} (type {type(value).__name__}) cannot be stored as JSON, so the model cannot be "
        "exported safely. Pass names/numbers to the registered class or factory instead (torch.nn classes "
        "and modules built by registered archs are accepted).")


def arch_config_from_json(value: Any) -> Any:
    """Inverse of ``arch_config_to_json``: rebuild torch.nn classes and nested registered modules."""
    if isinstance(value, list):
        return [arch_config_from_json(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__torch_nn__"}:
            cls = getattr(nn, str(value["__torch_nn__"]), None)
            if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
                raise ValueError(f"torch.nn has no module class {value['__torch_nn__']!r}")
            return cls
        if set(value) == {"__arch__", "config"}:
            return build_arch(value["__arch__"], arch_config_from_json(value["config"]))
        return {k: arch_config_from_json(v) for k, v in value.items()}
    return value
