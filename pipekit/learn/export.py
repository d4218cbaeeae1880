"""Exports (``learn.export`` / ``pipekit.load``) and checkpoints (``learn.save`` / ``learn.load``), both in
pipekit's one file format (``pipekit.core.archive``): a zip, or a folder, of manifest.json, record.json,
arrays.npz and weights.safetensors.

- An export (kind "learner") records the architecture's registered name and arguments, the loss (one of
  pipekit's, or of PyTorch's own by name: :data:`TORCH_LOSSES`) and metric records, the data recipe with every fitted state (``dls.state()``) and the registered name of the
  Learner class, with the settings it trains with (its layer groups' splitter and its optimiser by registered
  name, ``lr``, ``wd``, ``moms``...); the weights are the model's. ``pipekit.load(path)`` (or ``load_learner``)
  rebuilds it for inference without the training data, and given loaders (``learn.dls = dls``) it trains on as
  the exported learner did.
- A checkpoint (kind "checkpoint") holds the model's and the optimiser's tensors (under ``model.`` and
  ``opt.``), the epoch to resume at, the loaders' seeds and epoch counters, the random states (as uint8
  and integer arrays) and every callback's learned state, so a fit resumed from it is the uninterrupted one.

Loading reads JSON, NumPy arrays without pickle and safetensors, every size bounded before anything is
inflated: nothing in the file can run code, and every class it names is looked up in pipekit's registry.
A malformed field raises :class:`ExportError` naming it.

>>> import tempfile, polars as pl, pipekit, pipekit.datasets as D
>>> from pipekit.tabular import TabularDataLoaders, tabular_learner
>>> df = pl.read_csv(D.path("adult_sample") / "adult.csv", n_rows=200)
>>> dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["education"], cont_names=["age"],
...                                  bs=64, seed=0)
>>> learn = tabular_learner(dls, layers=[8], path=tempfile.mkdtemp())
>>> learn2 = pipekit.load(learn.export("model.pipekit"))      # the file under learn.path
>>> row = df.row(0, named=True)
>>> learn2.predict(row)[0] == learn.predict(row)[0]
True
"""
from __future__ import annotations

import copy
import functools
import inspect
import math
import os
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from pipekit.core.archive import Archive, building_from, read_pipekit, write_archive
from pipekit.core.component import Component, from_data, to_data
from pipekit.core.errors import STATE_ERRORS, ExportError, FieldError, ParameterError, UnknownNameError, warn
from pipekit.core.forks import check_fork_safe
from pipekit.core.registry import lookup, name_of, register, registered
from pipekit.core.validate import FastaiKeyword, Is, check, check_arguments, finite_number, one_of_two_names
from pipekit.data.dataloaders import DataLoaders, classes_vocab
from pipekit.data.loader import checked_device, default_device
from pipekit.learn.callbacks.core import state_keys
from pipekit.learn.callbacks.nonfinite import all_finite_now
from pipekit.learn.distributed import distrib_barrier, is_main_process, trains_together
from pipekit.learn.losses import TORCH_LOSS_TARGETS, BaseLoss, loss_from_kind
from pipekit.learn.nets import Y_RANGES
from pipekit.learn.optim import LOOKAHEAD_COUNT, LOOKAHEAD_SLOW, lookahead_problem
from pipekit.learn.optim import Lookahead, Optimizer, check_opt_args, opt_arg_ranges
from pipekit.learn.registry import COMPILED_PREFIX, UnknownArchError, arch_spec, build_arch, config_from_data
from pipekit.learn.registry import config_to_data, unwrapped
from pipekit.metrics import Metric, check_metric_targets

if TYPE_CHECKING:
    from pipekit.learn.learner import Learner

__all__ = ["export_learner", "learner_from_archive", "load_learner", "model_weights", "checkpoint_path",
           "save_checkpoint", "load_checkpoint", "ExportError"]


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors with a copy for each one sharing memory with an earlier one (tied weights): a
    safetensors file stores every tensor once."""
    seen: set[int] = set()
    out = {}
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen and v.numel() else v
        seen.add(ptr)
    return out


# ---------------------------------------------------------------------------------------------- exports
#: the most metrics a learner file may list (each is rebuilt and computed every epoch)
MAX_METRICS = 100


#: fastai's keywords that choose how its files are pickled (``learn.export``, ``learn.save``, ``load_learner``),
#: refused at any value (see :func:`check_file_kwargs`)
_PICKLE_REFUSAL = FastaiKeyword("{given} choose{s} how fastai pickles its file; a pipekit file holds no pickle (a JSON "
                                "record, arrays and the weights, read without running any code), so there is nothing "
                                "to choose: leave {names} out", show_value=False)
_PICKLE_ARGS = {"pickle_module": _PICKLE_REFUSAL, "pickle_protocol": _PICKLE_REFUSAL}


def check_file_kwargs(who: str, kwargs: dict[str, Any], takes: list[str]) -> None:
    """Refuse the keywords ``kwargs`` that ``who`` (``learn.export``, ``learn.save``, ``load_learner``) does not take:
    fastai's pickling ones (:data:`_PICKLE_ARGS`) saying why, any other as :func:`check_arguments` does.

    >>> try:
    ...     check_file_kwargs("learn.export", {"pickle_protocol": 4}, ["fname"])
    ... except ParameterError as e:
    ...     print(str(e)[:71])
    learn.export: pickle_protocol= chooses how fastai pickles its file; a p
    """
    check_arguments(who, kwargs, takes, fastai=_PICKLE_ARGS)


def export_learner(learn: Learner, fname: str | os.PathLike = "export.pipekit", **kwargs: Any) -> Path:
    """``learn.export``: one pipekit file with the weights, the architecture, loss and metrics and the data
    recipe; a path without an extension (or an existing folder) gets a folder holding the same files. A relative
    ``fname`` is under ``learn.path`` (the current folder unless the learner or its loaders were given a ``path``),
    as in fastai: ``learn.export("runs/m.pipekit")`` writes ``learn.path/runs/m.pipekit``, while ``learn.save``'s
    checkpoints go one folder further down, under ``learn.path/learn.model_dir``; an absolute ``fname`` is used as
    given. The path written is returned. ``pipekit.load(path)`` rebuilds the learner for inference without the
    training data.

    >>> import tempfile, polars as pl, pipekit, pipekit.datasets as D
    >>> from pipekit.tabular import TabularDataLoaders, tabular_learner
    >>> df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(1000)
    >>> dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education"],
    ...                                  cont_names=["age", "hours-per-week"], bs=64, seed=0)
    >>> learn = tabular_learner(dls, layers=[16], path=tempfile.mkdtemp())
    >>> file = learn.export("adult.pipekit")         # under learn.path
    >>> file.name, file.parent == learn.path
    ('adult.pipekit', True)
    >>> loaded = pipekit.load(file)          # no training rows in it: the recipe, the model, the vocab
    >>> loaded.dls.vocab, loaded.predict(df.row(0, named=True))[0] == learn.predict(df.row(0, named=True))[0]
    (['<50k', '>=50k'], True)
    """
    check_file_kwargs("learn.export", kwargs, ["fname"])
    fname = learn.path / fname  # an absolute fname stays as it is
    model = unwrapped(learn.model)  # a compiled or DDP model's weights under their own names, as it is rebuilt
    refuse_foreign = getattr(learn.dls, "refuse_foreign", None)
    if refuse_foreign is not None:  # loaders made elsewhere: their own fix comes before the model's
        refuse_foreign("export")
    spec = arch_spec(model)
    if spec is None:
        raise ExportError(
            f"cannot export: the model ({type(model).__name__}) was not built by a registered architecture, so it "
            "could not be rebuilt without unpickling code. Decorate its class or factory with "
            "@pipekit.learn.register_arch('name') and build the model through it (or call "
            "pipekit.learn.set_arch_spec(model, name, config)).")
    arrays: dict[str, np.ndarray] = {}
    try:
        config = config_to_data(spec[1], arrays, where=f"argument of arch {spec[0]!r}")
        dls = learn.dls.state(arrays)
        loss = learn.loss_func.to_record(arrays) if isinstance(learn.loss_func, Component) else None
        learner = name_of(type(learn))
    except (ExportError, UnknownNameError) as e:
        raise ExportError(f"cannot export: {e}") from None
    from pipekit.learn.inference import loss_methods
    from pipekit.learn.learner import several_targets

    # a plain function: the loaded learner predicts with the targets' default loss, if they have one; over several
    # targets no one target's default fits, and it predicts the model's outputs, as this learner does
    torch_loss = torch_loss_record(learn.loss_func) if loss is None else None
    if loss is None and torch_loss is None and any(loss_methods(learn.loss_func)):
        name = getattr(learn.loss_func, "__name__", type(learn.loss_func).__name__)
        own = " and ".join(m for m, f in zip(("activation", "decodes"), loss_methods(learn.loss_func)) if f)
        raise ExportError(f"cannot export: the loss {name!r} has its own {own}, which get_preds and predict apply "
                          "to the outputs, and a file cannot hold it (an export holds no code), so the loaded learner "
                          "would predict otherwise than this one. Subclass pipekit.learn.BaseLoss with that "
                          "activation and decodes and register it (@pipekit.register), or train with a pipekit loss "
                          "(CrossEntropyLossFlat(), BCEWithLogitsLossFlat(), MSELossFlat()...), and export again")
    if loss is None and torch_loss is None and not several_targets(learn.dls):
        name = getattr(learn.loss_func, "__name__", type(learn.loss_func).__name__)
        try:
            default = loss_from_kind(getattr(learn.dls, "loss_kind", None))
        except ParameterError:
            raise ExportError(f"cannot export: the loss {name!r} is a plain function, which a file cannot hold, and "
                              "the targets have no default loss that would give predictions their activation; "
                              "train with a pipekit loss (e.g. BCEWithLogitsLossFlat(), CrossEntropyLossFlat(), "
                              "MSELossFlat()) or a target block that has one") from None
        warn(f"export: the loss {name!r} is not one a file can hold (pipekit's losses, and PyTorch's "
             f"{', '.join(sorted(TORCH_LOSSES))}); the loaded learner predicts with the targets' default loss, "
             f"{default!r}, and its activation: predictions after loading differ from this learner's when this loss "
             "reads the outputs otherwise (a model ending in a sigmoid). Train with one of those losses to keep it")
    metrics, dropped = [], []
    for m in learn.metrics:  # a metric built on a function of the user's is left out: a loaded model needs none
        trial = dict(arrays)
        try:
            metrics.append(m.to_record(trial))
        except (ExportError, UnknownNameError):
            dropped.append(_shown_name(m))
            continue
        arrays = trial
    calls = ", ".join(f"pipekit.register({n}, kind='function')" for n in dropped)
    _warn_left_out("metric", dropped, f"register the function before exporting, and before loading in the process that "
                   f"loads the file, to keep it ({calls}), or set learn.metrics again after loading")
    _warn_left_out("callback", [type(cb).__name__ for cb in learn.cbs if not type(cb).__module__.startswith("pipekit.")],
                   "an export keeps no callbacks (it holds no code): add it again after loading, learn.add_cb(...), "
                   "where predicting or validating needs it")
    _warn_getters_left_out(dls)
    record = {"arch": {"name": spec[0], "config": config}, "loss": loss, "metrics": metrics, "dls": dls,
              "learner": _learner_record(learn, learner)}
    if torch_loss is not None:
        record["torch_loss"] = torch_loss
    if not is_main_process():  # under torchrun one process writes the file
        return Path(fname)
    return write_archive(fname, "learner", record, arrays, weights=_unshared(model.state_dict()))


def _shown_name(obj: Any) -> str:
    """How a warning names a metric: its ``name`` (its function's), else its class's name."""
    name = getattr(obj, "name", None)
    return name if isinstance(name, str) and name else type(obj).__qualname__


def _warn_left_out(what: str, names: list[str], keep: str, lost: str | None = None) -> None:
    """Warn that an export leaves out the ``what`` (metric, callback, getter) ``names``, with what the loaded learner
    then lacks (``lost``; by default a ``what`` of that name) and how to ``keep`` them."""
    if names:
        lost = lost or f"the loaded learner has no {what} of that name"
        warn(f"export: the {what}(s) {', '.join(repr(n) for n in names)} cannot be kept in the file and are left out, "
             f"so {lost}; {keep}")


def _warn_getters_left_out(dls: dict[str, Any]) -> None:
    """Warn of the getters of the data recipe's record ``dls`` that its file leaves out (functions that are not
    registered): each one's role, what the loaded learner cannot read without it, and how to keep it."""
    from pipekit.data.datablock import getter_fix, left_out_getters

    state = dls.get("recipe", {}).get("state") or {}
    left = left_out_getters(state)
    if not left:
        return
    n_inp, n_blocks = state.get("n_inp_", 1), len(state.get("unstored_getters_") or [])
    reads = {"input": "the input from a row (predict(row), test_dl(rows); given the input itself, such as the "
                      "image's path, it predicts as this learner does)",
             "label": "the labels of new items (test_dl(items, with_labels=True))"}
    lost = " nor ".join(f"{reads[role]} without {', '.join(repr(n) for _, n, r in left if r == role)}"
                        for role in ("input", "label") if any(r == role for _, _, r in left))
    keep = "; ".join(f"for {name!r} (the {role} getter of block {i}), {getter_fix(name, role, i, n_inp, n_blocks)}"
                     for i, name, role in left)
    _warn_left_out("getter", [name for _, name, _ in left], keep, f"the loaded learner cannot read {lost}")


#: the settings a learner trains with that an export keeps beside its class's registered name (``learner.class``),
#: named as Learner's arguments (``opt_kwargs``: the keyword arguments of a ``partial`` of the optimiser): a loaded
#: learner given loaders (``learn.dls = dls``) freezes, takes discriminative rates and trains as the exported one did
_LEARNER_SETTINGS = ("splitter", "opt_func", "opt_kwargs", "lr", "wd", "moms", "wd_bn_bias", "train_bn")


def _ref(obj: Any, kind: str) -> dict[str, str] | None:
    """``{"__ref__": name}`` for ``obj`` registered as a ``kind``; None when it is not."""
    try:
        name = name_of(obj)
        return {"__ref__": name} if lookup(name, kind) is obj else None
    except UnknownNameError:
        return None


def _plain(value: Any) -> bool:
    """Whether ``value`` is an optimiser's keyword argument a record holds as it is: None, True/False or a finite
    number."""
    return value is None or type(value) is bool or (type(value) in (int, float) and finite_number(value) is not None)


def _opt_kwarg_problem(func: Callable[..., Any], key: str, value: Any) -> str | None:
    """What is wrong with ``value`` as keyword argument ``key`` of optimiser ``func``, as words that follow the
    argument's name, or None: the one check of what an export writes (an optimiser it fails is left out) and of what
    ``load_learner`` reads (a file it fails is refused), so a file an export writes loads. ``key`` must be an argument
    ``func`` takes, other than its parameters; a record holds None, True/False or a finite number; of pipekit's
    optimisers (``SGD``, ``Adam``, ``ranger``...) each argument must then be in the range the optimiser checks as it
    is built (:func:`~pipekit.learn.optim.check_opt_args`: ``SGD: mom=2.0 is not accepted; expected a number in
    [0, 1)``), checked without building one, which would import torch's compiler into the loading process (about 1 s,
    several in a new process); another optimiser's argument must be of the type of its default: True or False for a
    flag, None, True/False or a number where the default is None (as Adam's ``fused`` takes them), a number
    otherwise. An ``lr`` (a ``partial(Adam, lr=...)``) must be a finite number above 0, as ``learner.lr``: the
    learner builds the optimiser with its own lr, which takes its place."""
    params = inspect.signature(func).parameters
    takes = [k for k, p in params.items() if k != "params" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    fname, got = name_of(func), f"got {str(value)[:60]!r}"
    if key not in takes:
        return f"is not an argument {fname} takes (it takes {', '.join(takes)})"
    if not _plain(value):
        return f"must be null, true or false, or a finite number (what a file holds), {got}"
    if key == "lr":  # a learner builds its optimiser with its own lr (learner.lr), which takes this one's place
        if type(value) in (int, float) and value > 0:
            return None
        return (f"must be a finite number above 0, as the learner's lr is; the learner trains with its own lr "
                f"(field 'learner.lr', learn.lr in code), which takes this one's place, {got}")
    if key in opt_arg_ranges(func):
        try:
            check_opt_args(func, **{key: value})
        except ParameterError as e:
            return f"is a value {fname} does not take: {e}"
        return None
    default = params[key].default
    if isinstance(default, bool):
        return None if type(value) is bool else f"must be true or false, as {fname} takes it, {got}"
    if default is None or (value is not None and type(value) is not bool):
        return None
    return f"must be a finite number, as {fname} takes it, {got}"


def _learner_record(learn: Learner, name: str) -> str | dict[str, Any]:
    """The ``learner`` field of an export: ``name``, the registered name of the learner's class, where the learner
    trains with a Learner's defaults, or an object of it (``class``) and the settings of :data:`_LEARNER_SETTINGS`.
    The splitter and the optimiser are kept by registered name: pipekit's own (``vision_learner``'s and the text
    learners' layer groups, ``Adam``, ``SGD``, ``ranger``, ...) or a user's registered as a ``layer_splitter`` or an
    ``optimizer``; a ``partial`` of the optimiser with its keyword arguments when each passes
    :func:`_opt_kwarg_problem`, the check ``load_learner`` makes of them (a number, True/False or None, as the
    optimiser takes it). A splitter or an optimiser a file cannot name is left out with a warning: the loaded learner
    trains the model as one layer group, or with Adam."""
    from pipekit.learn.learner import Learner

    # the defaults of the learner's own class (a TextLearner's moms are ULMFiT's), which a record of its name rebuilds
    defaults = {k: p.default for k, p in inspect.signature(Learner.__init__).parameters.items()}
    defaults.update({k: p.default for k, p in inspect.signature(type(learn).__init__).parameters.items()
                     if k in defaults and p.default is not inspect.Parameter.empty})
    default = {"splitter": None, "opt_func": _ref(defaults["opt_func"], "optimizer"), "opt_kwargs": {},
               "lr": defaults["lr"], "wd": defaults["wd"], "moms": list(defaults["moms"]),
               "wd_bn_bias": defaults["wd_bn_bias"], "train_bn": defaults["train_bn"]}
    settings = dict(default)
    if learn.splitter is not None:
        settings["splitter"] = _ref(learn.splitter, "layer_splitter")
        if settings["splitter"] is None:
            what = getattr(learn.splitter, "__qualname__", type(learn.splitter).__name__)
            warn(f"export: the splitter {what!r} is not registered, so a file cannot name it: the loaded learner "
                 "trains the model as one layer group (freeze, freeze_to and discriminative learning rates need the "
                 f"groups). Call pipekit.register({what}, kind='layer_splitter') before exporting, and before "
                 "loading in the process that loads the file, to keep it")
    opt = learn.opt_func
    func, kwargs = (opt.func, dict(opt.keywords)) if isinstance(opt, functools.partial) and not opt.args else (opt, {})
    ref = _ref(func, "optimizer")
    bad = None if ref is None else next(((k, p) for k, v in kwargs.items()
                                          if (p := _opt_kwarg_problem(func, k, v)) is not None), None)
    if ref is not None and bad is None:
        settings["opt_func"], settings["opt_kwargs"] = ref, kwargs
    else:
        base = opt.func if isinstance(opt, functools.partial) else opt
        what = f"{getattr(base, '__module__', '')}.{getattr(base, '__qualname__', type(base).__name__)}"
        why = "" if bad is None else f" (its keyword argument {str(bad[0])[:60]!r} {bad[1]})"
        warn(f"export: the optimiser {what if opt is base else f'partial({what}, ...)'}{why} is not one a file can "
             "hold (pipekit's Adam, SGD, RMSProp, RAdam, QHAdam, Lamb and ranger, or one registered with "
             "pipekit.register(fn, kind='optimizer'), alone or as a partial of the arguments it takes, as numbers, "
             "True/False or None): the loaded learner trains with Adam, a Learner's default; set learn.opt_func again "
             "after loading to train with it")
    numbers: tuple[tuple[str, Any], ...] = (("lr", learn.lr), ("wd", learn.wd), ("moms", learn.moms))
    for key, value in numbers:
        values: list[Any] = list(value) if key == "moms" else [value]
        if key == "wd" and value is None:
            settings[key] = None  # the optimiser's own weight decay
        elif all(finite_number(v) is not None for v in values):
            kept = [finite_number(v) for v in values]
            settings[key] = kept if key == "moms" else kept[0]
        else:
            warn(f"export: the learner's {key}, {value!r}, is kept only as "
                 f"{'three finite numbers' if key == 'moms' else 'a finite number'}: the loaded learner's is the "
                 f"default, {default[key]!r}")
    settings["wd_bn_bias"], settings["train_bn"] = bool(learn.wd_bn_bias), bool(learn.train_bn)
    return name if settings == default else {"class": name, **settings}


def _registered_from_ref(where: str, value: Any, field: str, kind: str) -> Any:
    """The object a ``{"__ref__": name}`` of a record names, registered as a ``kind`` (never anything else)."""
    ref = _field(value, dict, field, f'{{"__ref__": <the registered name of a {kind}>}} or null', where)
    if list(ref) != ["__ref__"] or not isinstance(ref["__ref__"], str):
        raise ExportError(f"{where}: record.json field {field!r} must be {{\"__ref__\": <the registered name of a "
                          f"{kind}>}} or null, got {str(ref)[:80]}")
    try:
        return lookup(ref["__ref__"], kind)
    except UnknownNameError as e:
        raise ExportError(f"{where}: record.json field {field!r}: {e}") from None


def _opt_kwargs(where: str, func: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """An optimiser's keyword arguments read from ``learner.opt_kwargs``: each one ``func`` takes, each passing
    :func:`_opt_kwarg_problem`, the check an export makes of what it writes (pipekit's optimisers' in the ranges they
    take), so a bad one is refused here, naming its field, rather than at the first fit."""
    for k, v in kwargs.items():
        problem = _opt_kwarg_problem(func, k, v)
        if problem is not None:
            raise ExportError(f"{where}: record.json field 'learner.opt_kwargs.{str(k)[:60]}' {problem}; the file is "
                              "damaged or was not written by learn.export()")
    return kwargs


def _learner_settings(where: str, value: Any) -> tuple[str, str, dict[str, Any]]:
    """The ``learner`` field of a learner export read: the field naming the class (``learner``, or
    ``learner.class``), that registered name, and the Learner arguments of the settings it keeps
    (:func:`_learner_record`), each checked: a splitter registered as a ``layer_splitter`` and an optimiser
    registered as an ``optimizer`` (never another function), keyword arguments the optimiser takes, as it takes
    them (:func:`_opt_kwarg_problem`: pipekit's optimisers' in their ranges), a finite ``lr`` above 0, a finite
    ``wd`` of at least 0 or null, three finite ``moms`` from 0 to 1, and True or False for ``wd_bn_bias`` and
    ``train_bn``. A name alone (every file written before the settings were kept) gives none:
    the loaded learner has a Learner's defaults."""
    rec = _field(value, (str, dict), "learner", "the registered name of a Learner class, or an object of it "
                 "('class') and the learner's training settings", where)
    if isinstance(rec, str):
        return "learner", rec, {}
    extra = [k for k in rec if k not in ("class", *_LEARNER_SETTINGS)]
    if extra:
        raise ExportError(f"{where}: record.json field 'learner' has {str(extra[0])[:60]!r}, which a learner's record "
                          f"does not hold (it holds class, {', '.join(_LEARNER_SETTINGS)}); the file is damaged or was "
                          "not written by learn.export()")
    name = _field(rec.get("class"), str, "learner.class", "the registered name of a Learner class", where)
    kwargs: dict[str, Any] = {}
    for key, kind in (("splitter", "layer_splitter"), ("opt_func", "optimizer")):
        if rec.get(key) is not None:
            kwargs[key] = _registered_from_ref(where, rec[key], f"learner.{key}", kind)
    opt_kwargs = _field(rec.get("opt_kwargs", {}), dict, "learner.opt_kwargs",
                        "an object of the optimiser's keyword arguments", where)
    if opt_kwargs and "opt_func" not in kwargs:
        raise ExportError(f"{where}: record.json field 'learner.opt_kwargs' holds arguments, but field "
                          "'learner.opt_func' names no optimiser to give them to; the file is damaged or was not "
                          "written by learn.export()")
    if opt_kwargs:
        kwargs["opt_func"] = functools.partial(kwargs["opt_func"], **_opt_kwargs(where, kwargs["opt_func"], opt_kwargs))
    ranges: dict[str, tuple[str, Callable[[float], bool]]] = {
        "lr": ("a finite number above 0", lambda x: x > 0),
        "wd": ("a finite number of at least 0, or null", lambda x: x >= 0),
        "moms": ("a list of 3 finite numbers from 0 to 1", lambda x: 0 <= x <= 1)}
    for key, (what, within) in ranges.items():
        v = rec.get(key)
        if v is None and (key == "wd" or key not in rec):  # left out: the default; a wd of null: the optimiser's own
            continue
        values: list[Any] = (v if isinstance(v, list) and len(v) == 3 else [None]) if key == "moms" else [v]
        if not all(type(x) in (int, float) and finite_number(x) is not None and within(x) for x in values):
            raise ExportError(f"{where}: record.json field 'learner.{key}' must be {what}, got {str(v)[:60]!r}; the "
                              "file is damaged or was not written by learn.export()")
        kwargs[key] = tuple(values) if key == "moms" else v
    for key in ("wd_bn_bias", "train_bn"):
        if key in rec:
            if type(rec[key]) is not bool:
                raise ExportError(f"{where}: record.json field 'learner.{key}' must be true or false, got "
                                  f"{str(rec[key])[:60]!r}; the file is damaged or was not written by learn.export()")
            kwargs[key] = rec[key]
    return "learner.class", name, kwargs


#: PyTorch's own losses an export records by name (``loss_func=nn.CrossEntropyLoss()``, as chapter 13 and the
#: "Pure PyTorch to fastai" tutorial write it), each with the arguments it keeps: the loaded learner has the same loss,
#: so it predicts the model's outputs as the exported one did (a torch loss activates nothing) and trains on.
#: A ``torch.Tensor`` argument (class weights: ``weight=``, BCE's ``pos_weight=``) is kept, when given, as its shape
#: and its values (``{"shape": [4], "values": [1.0, 2.0, 1.0, 1.0]}``), at most :data:`MAX_LOSS_WEIGHTS` of them.
TORCH_LOSSES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "CrossEntropyLoss": {"reduction": str, "ignore_index": int, "label_smoothing": (int, float),
                         "weight": torch.Tensor},
    "BCEWithLogitsLoss": {"reduction": str, "weight": torch.Tensor, "pos_weight": torch.Tensor},
    "BCELoss": {"reduction": str, "weight": torch.Tensor},
    "MSELoss": {"reduction": str}, "L1Loss": {"reduction": str},
    "NLLLoss": {"reduction": str, "ignore_index": int, "weight": torch.Tensor},
    "SmoothL1Loss": {"reduction": str, "beta": (int, float)}, "HuberLoss": {"reduction": str, "delta": (int, float)},
}
_REDUCTIONS = ("mean", "sum", "none")
#: the most values a loss's tensor argument is exported with: one weight per class, and a language model's vocabulary
#: holds up to 60,000 tokens (100,000 values are about 2 MB of record.json)
MAX_LOSS_WEIGHTS = 100_000
#: the most dimensions of a loss's tensor argument (weights broadcast over the class axis of outputs of up to 5)
_MAX_WEIGHT_DIMS = 5


def torch_loss_record(loss: Any) -> dict[str, Any] | None:
    """The record of one of PyTorch's own losses (:data:`TORCH_LOSSES`), its tensor arguments (class weights) as
    their shape and values, or None for anything else. A tensor argument that a record cannot hold as the loss reads
    it (not floating point, not finite, below zero, over :data:`MAX_LOSS_WEIGHTS` values) is refused with an
    ExportError, rather than exported as another loss."""
    if not _is_torch_loss(loss):
        return None
    name = type(loss).__name__
    params: dict[str, Any] = {}
    for k, kind in TORCH_LOSSES[name].items():
        v = getattr(loss, k, None)
        if kind is not torch.Tensor:
            params[k] = v
        elif v is not None:  # left out when not given: the loss is built without it
            params[k] = _weights_record(v, f"nn.{name}({k}=...)")
    return {"class": name, "params": params}


def _is_torch_loss(loss: Any) -> bool:
    """Whether ``loss`` is one of PyTorch's own losses of :data:`TORCH_LOSSES` (its class itself, not a subclass)."""
    name = type(loss).__name__
    return type(loss) is getattr(nn, name, None) and name in TORCH_LOSSES


def _weights_record(t: Any, what: str) -> dict[str, Any]:
    """A loss's tensor argument ``t`` as a record's data: its shape and its values (exactly, as Python floats)."""
    problem = ("is not a tensor" if not isinstance(t, torch.Tensor)
               else f"holds {t.dtype} values, not floating point" if not t.is_floating_point()
               else f"has {t.dim()} dimensions, over the {_MAX_WEIGHT_DIMS} an export keeps" if t.dim() > _MAX_WEIGHT_DIMS
               else f"holds {t.numel():,} values, over the {MAX_LOSS_WEIGHTS:,} an export keeps"
               if t.numel() > MAX_LOSS_WEIGHTS
               else "holds numbers that are not finite" if not bool(torch.isfinite(t).all())
               else "holds a weight below zero" if bool((t < 0).any()) else "")
    if problem:
        raise ExportError(f"cannot export: the loss's {what} {problem}, so the loaded learner could not have the same "
                          "loss; give it finite weights of at least zero, one per class, as a float tensor")
    return {"shape": list(t.shape), "values": t.detach().cpu().double().reshape(-1).tolist()}


def _weights_from_record(value: Any, field: str, where: str) -> torch.Tensor:
    """The tensor a :func:`_weights_record` describes, each part checked: a shape of at most five sizes, and as
    many finite numbers as it holds, at most :data:`MAX_LOSS_WEIGHTS` (whether they fit the targets is checked with
    the data, :func:`_check_loss_weights`)."""
    rec = _field(value, dict, field, "an object with 'shape' (a list of sizes) and 'values' (a list of numbers)",
                 where)
    shape = _field(rec.get("shape"), list, f"{field}.shape", "a list of sizes", where)
    values = _field(rec.get("values"), list, f"{field}.values", "a list of numbers", where)
    if len(shape) > _MAX_WEIGHT_DIMS or not all(type(d) is int and 0 <= d <= MAX_LOSS_WEIGHTS for d in shape):
        raise ExportError(f"{where}: record.json field '{field}.shape' must be a list of at most {_MAX_WEIGHT_DIMS} "
                          f"sizes (whole numbers from 0 to {MAX_LOSS_WEIGHTS:,}), got {str(shape)[:80]}")
    if len(values) > MAX_LOSS_WEIGHTS:
        raise ExportError(f"{where}: record.json field '{field}.values' holds {len(values):,} values, over the "
                          f"{MAX_LOSS_WEIGHTS:,} a loss's weights are exported with")
    if math.prod(shape) != len(values):
        raise ExportError(f"{where}: record.json field '{field}.values' holds {len(values):,} values, but its shape "
                          f"{shape} holds {math.prod(shape):,}")
    bad = next((i for i, x in enumerate(values) if finite_number(x) is None or type(x) not in (int, float)), None)
    t = torch.tensor(values if bad is None else [], dtype=torch.float32)
    if bad is None and not bool(torch.isfinite(t).all()):  # finite as a double, too large for a float32
        bad = int(torch.nonzero(~torch.isfinite(t))[0, 0])
    if bad is not None:
        raise ExportError(f"{where}: record.json field '{field}.values' must hold finite numbers, got "
                          f"{str(values[bad])[:60]!r} at position {bad}")
    return t.reshape(shape)


#: what each of PyTorch's loss arguments accepts, as torch checks it only when the loss is first computed (or, for an
#: ``ignore_index`` beyond int64, fails then in its own words)
_TORCH_LOSS_RANGES = {
    "label_smoothing": Is(lambda v: 0 <= v <= 1, "a number from 0 to 1"),
    "ignore_index": Is(lambda v: -2**63 <= v < 2**63, "a whole number within int64 (-2**63 to 2**63 - 1)"),
    "beta": Is(lambda v: v >= 0, "a number of at least 0"), "delta": Is(lambda v: v > 0, "a number above 0"),
}
def torch_loss_from_record(rec: Any, where: str, loss_kind: str | None = None) -> nn.Module:
    """PyTorch's loss a :func:`torch_loss_record` describes, each field checked: a class of :data:`TORCH_LOSSES`
    (looked up there, never by the name in the file) that reads the targets (their ``loss_kind``, when known),
    arguments of their types and in the ranges torch takes (:data:`_TORCH_LOSS_RANGES`), and no other field."""
    rec = _field(rec, dict, "torch_loss", "an object with 'class' and 'params'", where)
    extra = [k for k in rec if k not in ("class", "params")]
    if extra:
        raise ExportError(f"{where}: record.json field 'torch_loss' has {str(extra[0])[:60]!r}, which a loss record "
                          "does not hold (it holds 'class' and 'params')")
    name = _field(rec.get("class"), str, "torch_loss.class", f"one of {sorted(TORCH_LOSSES)}", where)
    if name not in TORCH_LOSSES:
        raise ExportError(f"{where}: record.json field 'torch_loss.class' must be one of {sorted(TORCH_LOSSES)}, "
                          f"got {name[:60]!r}")
    reads = TORCH_LOSS_TARGETS[name]
    if loss_kind in TORCH_LOSS_TARGETS["CrossEntropyLoss"] and loss_kind not in reads:
        raise ExportError(f"{where}: record.json field 'torch_loss.class' is {name}, which cannot read the targets of "
                          f"this export's data (their loss kind is {loss_kind!r}; {name} reads {' or '.join(reads)} "
                          "targets); the file is damaged or was not written by learn.export()")
    params = _field(rec.get("params"), dict, "torch_loss.params", "an object of the loss's arguments", where)
    allowed = TORCH_LOSSES[name]
    params = dict(params)
    for k, v in list(params.items()):
        if k not in allowed:
            raise ExportError(f"{where}: record.json field 'torch_loss.params' has {str(k)[:60]!r}, which {name} "
                              f"is not exported with (it takes {sorted(allowed)})")
        if allowed[k] is torch.Tensor:
            extra = [f for f in v if f not in ("shape", "values")] if isinstance(v, dict) else []
            if extra:
                raise ExportError(f"{where}: record.json field 'torch_loss.params.{k}' has {str(extra[0])[:60]!r}, "
                                  "which a loss's weights are not exported with (they hold 'shape' and 'values')")
            params[k] = _weights_from_record(v, f"torch_loss.params.{k}", where)
            continue
        _field(v, allowed[k], f"torch_loss.params.{k}", f"a {getattr(allowed[k], '__name__', 'number')}", where)
        if k == "reduction" and v not in _REDUCTIONS:
            raise ExportError(f"{where}: record.json field 'torch_loss.params.reduction' must be one of "
                              f"{list(_REDUCTIONS)}, got {str(v)[:60]!r}")
        if allowed[k] == (int, float) and finite_number(v) is None:
            raise ExportError(f"{where}: record.json field 'torch_loss.params.{k}' must be finite, got {str(v)[:60]}")
        if k in _TORCH_LOSS_RANGES and not _TORCH_LOSS_RANGES[k].accepts(v):
            raise ExportError(f"{where}: record.json field 'torch_loss.params.{k}' must be {_TORCH_LOSS_RANGES[k]}, "
                              f"as {name} takes it, got {str(v)[:60]}; the file is damaged or was not written by "
                              "learn.export()")
    return getattr(nn, name)(**params)


def _field(value: Any, types: type | tuple[type, ...], field: str, what: str, where: str) -> Any:
    if not isinstance(value, types) or isinstance(value, bool):  # bool is an int to Python, never to a record
        raise ExportError(f"{where}: record.json field {field!r} must be {what}, got {type(value).__name__} "
                          f"{str(value)[:60]!r}")
    return value


def _rebuild(where: str, what: str, build: Callable[[], Any], path: str | None = None) -> Any:
    """``build()``, its errors said as errors of the file ``where``; ``path``: where in record.json the record that
    ``build`` rebuilds sits, so a refused field of it is named from the top."""
    try:
        return build()
    except _TooLarge:
        raise
    except FieldError as e:
        raise ExportError(f"{where}: record.json {e.within(path) if path else f'{what}: {e}'}") from None
    except UnknownArchError as e:
        raise ExportError(f"{where}: record.json: {e}") from None
    except (ExportError, UnknownNameError) as e:
        raise ExportError(f"{where}: record.json {what}: {e}") from None
    except STATE_ERRORS as e:
        said = (str(e).splitlines() or [""])[0][:300]  # torch's C++ errors carry a stack trace after the first line
        raise ExportError(f"{where}: record.json {what} could not be rebuilt ({type(e).__name__}: {said})") from e


def _mismatch(want: dict[str, tuple[int, ...]], have: dict[str, tuple[int, ...]], strict: bool = True) -> str:
    """What keeps tensors of shapes ``have`` from loading into a model whose state has shapes ``want`` ('' when
    they load): missing and unexpected names (with ``strict``) and sizes that differ."""
    missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    sizes = [f"{k}: {have[k]} stored, {want[k]} built" for k in sorted(set(want) & set(have)) if want[k] != have[k]]
    said = [f"{what}: {items[:3]}{' ...' if len(items) > 3 else ''}" for what, items in
            (("Missing key(s)", missing if strict else []), ("Unexpected key(s)", unexpected if strict else []),
             ("size mismatch", sizes)) if items]
    return "; ".join(said)


class _OverBudget(Exception):
    """Raised inside a build that has registered more parameters, buffers or modules than its budget."""


class _TooLarge(ExportError):
    """A record whose architecture builds far more than the file stores weights for (:func:`_bounded`)."""


def _bounded(where: str, name: str, build: Callable[[], Any], tensors: dict[str, Any]) -> Callable[[], Any]:
    """``build``, refused with an ExportError as soon as it registers more tensor elements than twice the stored
    weights' (plus 10 M), more tensors than twice the stored ones (plus 1000) or more modules than four per stored
    tensor (plus 1000), at any depth, and never more than one tensor per 512 bytes of stored weights or one module
    per KiB of them (plus 1000): the budget is bought by the weights' bytes, not by entries. A nested
    architecture's layers that a body cut throws away are built (and, off the meta device, allocated and
    initialised) but never compared with the stored weights, so this bounds what a record can make pipekit build
    by what the file stores. An entry with no elements costs the file a few dozen bytes of header: 100,000 of them
    bought 20 s of building when each counted in full (a resnet18 export's 134 tensors hold 47 MB, a tabular
    model's few dozen some KB: the 1000 cover those).
    A parameter is registered before it is initialised, so the refusal comes before its memory is written."""
    max_elements = 2 * sum(int(t.numel()) for t in tensors.values()) + 10_000_000
    stored = sum(int(t.numel()) * t.element_size() for t in tensors.values())
    max_tensors = 1000 + min(2 * len(tensors), stored // 512)
    max_modules = 1000 + min(4 * len(tensors), stored // 1024)
    thread = threading.get_ident()

    def run() -> Any:
        built = {"elements": 0, "tensors": 0, "modules": 0}
        over: list[str] = []

        def count(kind: str, n: int, limit: int, what: str) -> None:
            if threading.get_ident() != thread:  # another thread building its own modules
                return
            built[kind] += n
            if built[kind] > limit and not over:
                over.append(what)
            if over:
                raise _OverBudget(over[0])

        def on_tensor(module: nn.Module, key: str, t: Any) -> None:
            if t is not None:
                count("tensors", 1, max_tensors,
                      f"over {max_tensors:,} parameters and buffers, while the file stores {len(tensors):,} "
                      f"holding {stored:,} bytes")
                count("elements", int(t.numel()), max_elements,
                      f"over {max_elements:,} parameter and buffer elements, while the file stores "
                      f"{(max_elements - 10_000_000) // 2:,}")

        def on_module(module: nn.Module, key: str, sub: Any) -> None:
            if sub is not None:
                count("modules", 1, max_modules,
                      f"over {max_modules:,} modules, while the file stores {len(tensors):,} tensors holding "
                      f"{stored:,} bytes")

        hooks = [torch.nn.modules.module.register_module_parameter_registration_hook(on_tensor),
                 torch.nn.modules.module.register_module_buffer_registration_hook(on_tensor),
                 torch.nn.modules.module.register_module_module_registration_hook(on_module)]
        try:
            return build()
        except _OverBudget:
            pass
        except Exception:
            if not over:
                raise
        finally:
            for h in hooks:
                h.remove()
        raise _TooLarge(f"{where}: record.json field 'arch.config' makes architecture {name!r} build {over[0]} "
                          "(layers a nested architecture builds and then cuts away are counted too); the file "
                          "is damaged or was not written by learn.export()")
    return run


#: what fills a tensor with random values in place, and takes no other argument than the distribution's (and a
#: ``generator``): the tensor methods and the initialisers of torch.nn.init that torch hands to a TorchFunctionMode
#: whole
_RANDOM_FILLS = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.bernoulli_, torch.Tensor.cauchy_,
                           torch.Tensor.exponential_, torch.Tensor.geometric_, torch.Tensor.log_normal_,
                           torch.Tensor.random_, nn.init.normal_, nn.init.uniform_, nn.init.trunc_normal_})
#: the random initialisers torch hands to a TorchFunctionMode whole that check the tensor's shape first (Kaiming's
#: uniform, nn.Linear's and nn.Conv2d's default): run on the meta device too, where they check it and draw nothing
_SHAPE_CHECKING_FILLS = frozenset({nn.init.kaiming_uniform_})


class _NoGlobalDraws(torch.overrides.TorchFunctionMode):
    """Random fills of a model being rebuilt from a file, which its stored weights then overwrite, left out of
    the global random generators: a script that seeds, loads a model and trains draws the numbers it would have
    drawn without the load, as fastai's ``load_learner`` leaves them. A fill of a real tensor draws from this
    mode's own generator (seeded 0: a load is repeatable) where the builder names none: a tabular net, built for
    real as the buffers it computes from its config and does not save are empty on the meta device, drew its
    embedding table and its linear layers from torch's. A fill of a meta tensor is left out: it holds no values,
    and torch runs those fills on the meta device through Python reference kernels whose first call imports its
    compiler stack (``torch._dynamo``, 3-5 s in a new process) for nothing. Initialisers that check the tensor's
    shape (Kaiming's, Xavier's) still check it. The mode holds in the building thread alone (the generators' states
    are not saved and put back around the build, which would undo the draws of the user's other threads meanwhile);
    a draw it does not see (``torch.randn`` in a builder of the user's) draws from torch's."""

    def __init__(self) -> None:
        super().__init__()
        self.generators: dict[torch.device, torch.Generator] = {}

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _RANDOM_FILLS or func in _SHAPE_CHECKING_FILLS:
            t = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes it by name
            if isinstance(t, torch.Tensor) and t.is_meta and func in _RANDOM_FILLS:
                return t
            if isinstance(t, torch.Tensor) and not t.is_meta and kwargs.get("generator") is None:
                if t.device not in self.generators:
                    self.generators[t.device] = torch.Generator(t.device).manual_seed(0)
                kwargs = {**kwargs, "generator": self.generators[t.device]}
        return func(*args, **kwargs)


def _check_shapes(where: str, name: str, build: Callable[[], Any], tensors: dict[str, Any]) -> nn.Module | None:
    """Build the architecture the record describes on the meta device (no memory, no initialisation) and refuse
    a record whose model does not have exactly the stored weights' names and shapes: the weights are in the file,
    so a model that matches them is as large as the file allows, never what a crafted config asks for. The build
    itself is bounded by the stored weights (:func:`_bounded`), as layers built and cut away are never among them.
    Returns the model built on the meta device (which :func:`_load_into_meta` may give the stored weights), or None
    where it could not be built there: such an architecture is checked after it is built, by ``load_state_dict``."""
    try:
        with torch.device("meta"), _NoGlobalDraws():
            meta = _bounded(where, name, build, tensors)()
    except _TooLarge:
        raise
    except Exception:  # noqa: BLE001  (a bad record is reported by the real build; a builder that needs real
        return None  # tensors is checked after building, by load_state_dict)
    if not isinstance(meta, nn.Module):
        return None
    said = _mismatch({k: tuple(v.shape) for k, v in meta.state_dict().items()},
                     {k: tuple(v.shape) for k, v in tensors.items()})
    if said:
        raise ExportError(f"{where}: the weights (weights.safetensors) do not load into architecture {name!r} as "
                          f"record.json configures it ({said}); the file is damaged or was not written "
                          "by learn.export()")
    return meta


def _held_tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    """Every tensor ``model``'s modules hold: parameters, buffers, and tensors kept in other attributes, alone or
    in a list, tuple or dict (an LSTM's flat weights, a weight a forward hook recomputes)."""
    for m in model.modules():
        for v in vars(m).values():
            if isinstance(v, dict):
                yield from (t for t in v.values() if isinstance(t, torch.Tensor))
            elif isinstance(v, (list, tuple)):
                yield from (t for t in v if isinstance(t, torch.Tensor))
            elif isinstance(v, torch.Tensor):
                yield v


def _load_into_meta(meta: nn.Module, tensors: dict[str, torch.Tensor]) -> bool:
    """Give the model built on the meta device for the shape check the stored weights as its own tensors
    (``load_state_dict(assign=True)``, each in the dtype the model keeps it in), so that loading builds the
    architecture once and initialises nothing the weights then overwrite (a resnet18 export reloads in 0.35 s
    instead of 0.66 s on two CPU cores).
    False where that would not give the model a real build gives, and the model must be built for real: weights
    tied between layers (assigning would untie them), or a tensor the stored weights do not hold (a buffer that is
    not saved, a tensor kept in another attribute) left on the meta device."""
    named = [*meta.named_parameters(remove_duplicate=False), *meta.named_buffers(remove_duplicate=False)]
    if len({id(t) for _, t in named}) != len(named):
        return False
    own = meta.state_dict()
    try:
        meta.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()}, strict=True, assign=True)
    except RuntimeError:  # said as the real build's load_state_dict says it
        return False
    return not any(t.is_meta for t in _held_tensors(meta))


def _refuse_unusable(where: str, model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse stored weights ``model`` (built for real or on the meta device) cannot predict with
    (:func:`unusable_weights`)."""
    unusable = unusable_weights(model.state_dict(), tensors)
    if unusable:
        raise ExportError(f"{where}: the weights (weights.safetensors) cannot predict: {'; '.join(unusable[:3])}"
                          f"{' ...' if len(unusable) > 3 else ''}; the file is damaged or was not written by "
                          "learn.export()")


def _check_y_range(where: str, name: str, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Refuse an ``arch.config.y_range`` of one of pipekit's architectures (a collab or tabular model, a text
    classifier, a unet) that its model cannot compute with (:data:`~pipekit.learn.nets.Y_RANGES`: finite, low <
    high, both and high - low within float32's range), naming the field, before anything is built: a range such as
    ``[-1e308, 1e308]`` would otherwise load and make every prediction NaN."""
    arch = _registered_arch(name)
    if "y_range" not in config or not str(getattr(arch, "__module__", "")).startswith("pipekit."):
        return
    try:
        y_range = config_from_data({"y_range": config["y_range"]}, arrays)["y_range"]
    except STATE_ERRORS + (ExportError,):
        return  # not a value at all: the build refuses it, naming the architecture
    if not Y_RANGES.accepts(y_range):  # a range per target: a tabular model of several
        raise ExportError(f"{where}: record.json field 'arch.config.y_range' must be {Y_RANGES}, got "
                          f"{str(config['y_range'])[:80]}; the file is damaged or was not written by learn.export()")


def _registered_arch(name: str) -> Any:
    """The class or factory registered as architecture ``name``; None when there is none (the build reports it)."""
    try:
        return lookup(name, "arch")
    except UnknownNameError:
        return None


def _metrics_that_score(where: str, metrics: list[Metric], dls: Any, loss: Any) -> list[Metric]:
    """The file's metrics that score its data's targets. A learner exported before pipekit checked them may hold one
    that does not (rmse of classes): it is left out with a warning naming it, so the file still loads and predicts;
    its numbers meant nothing."""
    kept = []
    for m in metrics:
        try:
            check_metric_targets(where, [m], dls, loss)
        except ParameterError as e:
            warn(f"{e}; the loaded learner validates without it")
            continue
        kept.append(m)
    return kept


#: the registry kind of the functions ``learner_from_archive`` calls on each learner it rebuilds, ``fn(learn)``, to
#: give it again what its package set on it besides the settings a file keeps (``pipekit.vision``'s ``dls_hook``)
LOADED_LEARNER = "loaded_learner"

#: the fields of a learner export's record.json, as :func:`export_learner` writes them (every format since 2); a file
#: with any other is refused, not read past
_LEARNER_FIELDS = ("arch", "loss", "torch_loss", "metrics", "dls", "learner")


def learner_from_archive(archive: Archive, device: str | torch.device = "cpu") -> Learner:
    """Rebuild an exported Learner for inference (the loader of kind "learner" behind ``pipekit.load``), with the
    settings it trained with (:func:`_learner_record`) and ``path`` the file's folder; every field of the record is
    checked before any is used.

    >>> import tempfile, polars as pl, pipekit.datasets as D
    >>> from pipekit.core.archive import read_pipekit
    >>> from pipekit.learn.export import learner_from_archive
    >>> from pipekit.tabular import TabularDataLoaders, tabular_learner
    >>> df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(200)
    >>> dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["education"], cont_names=["age"], bs=64, seed=0)
    >>> file = tabular_learner(dls, layers=[8], path=tempfile.mkdtemp()).export("adult.pipekit")
    >>> archive = read_pipekit(file)
    >>> loaded = learner_from_archive(archive)
    >>> archive.kind, loaded.dls.vocab, loaded.path == file.parent
    ('learner', ['<50k', '>=50k'], True)
    """
    from pipekit.learn.learner import Learner

    where, arrays, rec = archive.where, archive.arrays, archive.record
    if not isinstance(rec, dict):
        raise ExportError(f"{where}: record.json must hold a JSON object, got {type(rec).__name__}")
    arch = _field(rec.get("arch"), dict, "arch", "an object with 'name' and 'config'", where)
    name = _field(arch.get("name"), str, "arch.name", "a registered architecture name", where)
    _field(arch.get("config"), dict, "arch.config", "an object of constructor arguments", where)
    if rec.get("loss") is not None:
        _field(rec["loss"], dict, "loss", "a loss record (an object) or null", where)
    metrics = _field(rec.get("metrics"), list, "metrics", "a list of metric records", where)
    if len(metrics) > MAX_METRICS:
        raise ExportError(f"{where}: record.json field 'metrics' lists {len(metrics):,} metrics, over the "
                          f"{MAX_METRICS} a learner is exported with")
    for i, m in enumerate(metrics):
        _field(m, dict, f"metrics[{i}]", "a metric record (an object)", where)
    _field(rec.get("dls"), dict, "dls", "the DataLoaders state (an object)", where)
    learner_field, learner_name, settings = _learner_settings(where, rec.get("learner"))
    unknown = [k for k in rec if k not in _LEARNER_FIELDS]
    if unknown:
        raise ExportError(f"{where}: record.json has field {str(unknown[0])[:60]!r}, which a learner export does not "
                          f"hold (it holds {', '.join(_LEARNER_FIELDS)}); the file is damaged or was not written by "
                          "learn.export()")
    if rec.get("torch_loss") is not None and rec.get("loss") is not None:
        raise ExportError(f"{where}: record.json has both 'loss' and 'torch_loss', where an export holds one loss "
                          "(pipekit's, or one of PyTorch's own); the file is damaged or was not written by "
                          "learn.export()")

    dls = _rebuild(where, "field 'dls'", lambda: DataLoaders.from_state(rec["dls"], arrays, device=device),
                   path="dls")
    try:
        tensors = plain_weight_names(archive.tensors())
    except ExportError as e:
        raise ExportError(f"{where}: the weights (weights.safetensors) do not load into architecture {name!r} ({e}); "
                          "the file is damaged or was not written by learn.export()") from None
    _check_y_range(where, name, arch["config"], arrays)

    def build() -> Any:
        return build_arch(name, config_from_data(arch["config"], arrays))

    # an architecture may check its stored arguments against the stored weights' shapes before anything is built:
    # building is the cost a crafted config could inflate (one module per requested layer, even on the meta device)
    checker = getattr(_registered_arch(name), "check_stored", None)
    if callable(checker):
        try:
            checker(arch["config"], {k: tuple(v.shape) for k, v in tensors.items()}, "arch.config")
        except ExportError as e:
            raise ExportError(f"{where}: record.json {e}") from None
    meta = _check_shapes(where, name, build, tensors)
    if meta is not None:  # its state has the names, shapes and dtypes a real build's has
        _refuse_unusable(where, meta, tensors)
    # the weights become the checked model's own tensors where they make it whole: the architecture is built once,
    # and nothing is initialised that the weights would overwrite. Otherwise it is built for real and given them.
    model = meta if meta is not None and _load_into_meta(meta, tensors) else None
    if model is None:
        with _NoGlobalDraws():
            model = _rebuild(where, f"architecture {name!r}", _bounded(where, name, build, tensors))
        if not isinstance(model, nn.Module):
            raise ExportError(f"{where}: architecture {name!r} built a {type(model).__name__}, not a torch module")
        if meta is None:
            _refuse_unusable(where, model, tensors)
        try:
            model.load_state_dict(tensors, strict=True)
        except (ExportError, RuntimeError) as e:
            raise ExportError(f"{where}: the weights (weights.safetensors) do not load into architecture {name!r} "
                              f"({e}); the file is damaged or was not written by learn.export()") from None
    from pipekit.learn.learner import several_targets

    loss: Any
    if rec.get("loss") is None and rec.get("torch_loss") is not None:  # one of PyTorch's own, rebuilt as it was
        loss = torch_loss_from_record(rec["torch_loss"], where, getattr(dls, "loss_kind", None))
    elif rec.get("loss") is None and several_targets(dls):  # a function of the user's over several targets
        loss = _loss_not_exported
    elif rec.get("loss") is None:  # the loss was a plain function: the target's default gives the activation
        loss = _rebuild(where, "default loss (no 'loss' field)", lambda: loss_from_kind(dls.loss_kind))
    else:
        loss = _rebuild(where, "field 'loss'", lambda: BaseLoss.from_record(rec["loss"], arrays), path="loss")
    _check_data_fits_model(where, dls, model, loss, name)
    metric_objs = [_rebuild(where, f"field 'metrics[{i}]'", functools.partial(Metric.from_record, m, arrays),
                            path=f"metrics[{i}]") for i, m in enumerate(metrics)]
    metric_objs = _metrics_that_score(where, metric_objs, dls, loss)
    cls = _rebuild(where, f"field {learner_field!r}", lambda: lookup(learner_name, "learner", base=Learner))
    _check_learner_class(where, learner_field, cls, dls)
    if settings.get("splitter") is not None:
        _check_splitter(where, settings["splitter"], model, name)
    learn = cls(dls, model, loss_func=loss, metrics=metric_objs, device=device, **settings)
    # what a learner held besides its settings, which a package rebuilds from the file's data: each function
    # registered as a "loaded_learner" finishes the loaded learner (vision_learner's: loaders assigned later are
    # normalised with the statistics of the Normalize the exported ones carry, as the exported learner's were)
    for restore in registered(LOADED_LEARNER).values():
        restore(learn)
    # the file's folder, where fastai's loaded learner keeps the exported one's path (the same folder for
    # learn.export("name")): learn.save and learn.export write beside the file, wherever it was moved
    learn.path = Path(where).parent
    learn.model.eval()
    return learn


register(learner_from_archive, name="learner", kind="loader")


def _check_learner_class(where: str, field: str, cls: type[Learner], dls: DataLoaders) -> None:
    """Refuse a learner class (read from ``field``) that cannot work on the file's data (its
    :meth:`~pipekit.learn.learner.Learner.data_problem`): said now, by the file, rather than by the loaded learner's
    first predict."""
    problem = cls.data_problem(dls)
    if problem is not None:
        blocks = ", ".join(type(b).__name__ for b in dls.blocks)
        raise ExportError(f"{where}: record.json field {field!r} names {name_of(cls)}, which {problem}; the file's "
                          f"data (field 'dls') is not that: its blocks are {blocks}; the file is damaged or was not "
                          "written by learn.export()")


def _check_splitter(where: str, splitter: Callable[..., Any], model: nn.Module, arch: str) -> None:
    """Refuse a ``learner.splitter`` that does not split ``model`` into layer groups (a splitter of another kind of
    model): non-empty groups that hold each of the model's parameters once, as the optimiser takes them. Said now,
    by the file, rather than by the loaded learner's first ``freeze`` or fit (the groups are checked here, not by
    building an optimiser, which would import torch's compiler into the loading process)."""
    try:
        groups = [list(g) for g in splitter(model)]
        problem = ""
    except Exception as e:  # noqa: BLE001  (a splitter reads the model its own way, and fails on another in its own)
        groups, problem = [], f"{type(e).__name__}: {str(e)[:200]}"
    ids = [id(p) for g in groups for p in g]
    params = {id(p) for p in model.parameters()}
    problem = problem or ("it gives no groups, or an empty one" if not groups or not all(groups)
                          else "it puts a parameter in two groups" if len(set(ids)) != len(ids)
                          else "it gives tensors that are not the model's parameters" if set(ids) - params
                          else f"it leaves {len(params - set(ids))} of the model's parameters out of every group"
                          if params - set(ids) else "")
    if problem:
        raise ExportError(f"{where}: record.json field 'learner.splitter' names {name_of(splitter)!r}, which does not "
                          f"split the model of architecture {arch!r} into layer groups ({problem}); the file is damaged "
                          "or was not written by learn.export()")


def _loss_not_exported(pred: Any, *targets: Any, **kwargs: Any) -> torch.Tensor:
    """The loss of a learner loaded from an export of data with several targets whose loss was a function of the
    user's (``combine_loss(pred, y0, y1)``), which a file cannot hold. Predicting needs no loss: the predictions
    are the model's outputs, as the exported learner gave them. Training or scoring needs the function back."""
    raise ParameterError("this learner was loaded from an export of data with several targets, trained with a loss "
                         "function of your own, which the file cannot hold (its predictions, learn.predict and "
                         "learn.get_preds, are the model's outputs, as before the export): to train or score it, "
                         "set learn.loss_func to that function again (e.g. learn.loss_func = combine_loss)")


#: channels of the images an ImageBlock makes, by its ``cls``
_IMAGE_CHANNELS = {"RGB": 3, "L": 1}


def _layers(model: nn.Module, kinds: tuple[type, ...]) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kinds)]


def _check_loss_weights(where: str, loss: Any, n_classes: Any) -> None:
    """Refuse a loss whose class weights (``weight``, BCE's ``pos_weight``) read from a file do not fit the targets:
    one weight per class (``pos_weight``, and the ``weight`` of PyTorch's BCE, may be one for all), along the last
    axis, each finite and not below zero, and class weights not all zero. torch refuses another count only when the
    loss is first computed, and a NaN or negative weight, or class weights that are all zero, score and train wrongly
    without any error. Pipekit's losses and PyTorch's own
    (:data:`TORCH_LOSSES`) are checked alike."""
    if isinstance(loss, BaseLoss):
        params, field = loss.get_params(deep=False), "loss.params"
    elif _is_torch_loss(loss):
        params, field = {k: getattr(loss, k, None) for k in ("weight", "pos_weight")}, "torch_loss.params"
    else:
        return
    bce = isinstance(loss, (nn.BCEWithLogitsLoss, nn.BCELoss))  # its weight multiplies each output, as pos_weight does
    for name in ("weight", "pos_weight"):
        w = params.get(name)
        if w is None:
            continue
        shape = tuple(torch.as_tensor(w).shape)
        values = torch.as_tensor(w, dtype=torch.float64).reshape(-1)
        counts = (n_classes,) if name == "weight" and not bce else (1, n_classes)
        # one per class, along the last axis: CrossEntropyLoss's and NLLLoss's are one-dimensional, BCE's broadcast
        rows = len(shape) > 1 if not bce and name == "weight" else any(d != 1 for d in shape[:-1])
        problem = (f"has shape {list(shape)}, where the loss reads one weight per class along the last axis" if rows
                   else f"holds {len(values)} weights for {n_classes} classes (one per class)"
                   if type(n_classes) is int and len(values) not in counts
                   else "holds numbers that are not finite" if not bool(torch.isfinite(values).all())
                   else "holds a weight below zero" if bool((values < 0).any())
                   else "holds weights that sum to 0, so every item's loss is weighted away (a mean of 0 / 0 is NaN)"
                   if name == "weight" and len(values) and float(values.sum()) == 0 else "")
        if problem:
            shown = values.tolist() if isinstance(w, torch.Tensor) else w
            raise ExportError(f"{where}: record.json field '{field}.{name}' {problem}, got {str(shown)[:80]}; the "
                              "file is damaged or was not written by learn.export(): export the trained learner again")


def _check_collab_classes(where: str, model: nn.Module, processor: Any) -> None:
    """A collaborative-filtering model keeps the user and item ids it was trained on (``classes``, by
    ``user_name`` and ``item_name`` in its config): the table processing must code both id columns into exactly
    those, in that order. Codes are embedding rows, so ids left uncoded, or coded by other or reordered classes of
    the same count, would score other users and items without any error."""
    spec = arch_spec(model)
    config = spec[1] if spec is not None else {}
    classes = config.get("classes")
    names = [n for n in (config.get("user_name"), config.get("item_name")) if isinstance(n, str)]
    if not isinstance(classes, Mapping) or len(names) != 2 or not all(n in classes for n in names):
        return
    again = "the file is damaged or was not written by learn.export(): export the trained model again"
    procs = getattr(processor, "procs", None)
    procs = procs if isinstance(procs, list) else []
    # the coding proc (Categorify), known by its fitted classes_ so this layer names no table code above it
    coders = {c: i for i, p in enumerate(procs)
              if getattr(p, "is_fitted", False) and isinstance(getattr(p, "classes_", None), Mapping)
              for c in p.classes_}
    missing = [n for n in names if n not in coders]
    if missing:
        raise ExportError(f"{where}: record.json field 'dls.recipe.params.processor.params.procs' has no Categorify "
                          f"coding the id column(s) {missing}, but the model reads them as the codes of "
                          f"arch.config.classes ({names}); {again}")
    for n in names:
        ours, theirs = list(classes[n]), list(procs[coders[n]].classes_[n])
        if ours != theirs:
            at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            raise ExportError(
                f"{where}: record.json field 'arch.config.classes.{n}' ({len(ours)} ids) is not the classes the "
                f"table processing codes column {n!r} into (field 'dls.recipe.params.processor.params.procs"
                f"[{coders[n]}].state.classes_.{n}', {len(theirs)} ids): they differ first at code {at} "
                f"({ours[at] if at < len(ours) else None!r} vs {theirs[at] if at < len(theirs) else None!r}); {again}")


def _check_data_fits_model(where: str, dls: DataLoaders, model: nn.Module, loss: Any, arch: str) -> None:
    """Refuse an export whose data recipe cannot feed its model or name its outputs: a fitted recipe missing what
    encoding new items reads; and, for pipekit's own architectures (whose input and output layers are known: the
    first convolution or embedding, the last linear or convolution layer), images of other channels than the
    model's first convolution takes, a text vocabulary of another size than its embedding, or, with a
    classification loss, a target vocabulary of another size than the model's outputs."""
    from pipekit.data.datablock import DataBlock
    from pipekit.learn.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat
    from pipekit.metrics.base import two_classes_as_labels

    recipe = dls.recipe
    if isinstance(recipe, DataBlock) and not recipe.is_fitted:  # its fields are checked as it is rebuilt
        raise ExportError(f"{where}: record.json field 'dls.recipe.state' is empty: an export's data recipe is the "
                          "fitted one; the file is damaged or was not written by learn.export()")
    processor = getattr(recipe, "processor", None)
    # a fitted processor's fields are checked as it is rebuilt (TabularProcessor.state_from_data); an unfitted one
    # (an empty state) cannot encode new rows
    if isinstance(processor, Component) and not processor.is_fitted:
        raise ExportError(f"{where}: record.json field 'dls.recipe.params.processor.state' is empty: an export's table "
                          "processing is the fitted one; the file is damaged or was not written by learn.export()")
    try:
        # the classes the outputs are named by: a text classifier's dls.vocab lists the text's tokens first
        blocks, n_inp, c, vocab = list(dls.blocks), dls.n_inp, dls.c, classes_vocab(dls)
        kind = dls.loss_kind
    except Exception as e:  # noqa: BLE001  (a recipe's own code reads the state, and may raise anything on a bad one)
        raise ExportError(f"{where}: record.json field 'dls' holds a data recipe that cannot be read ({type(e).__name__}"
                          f": {str(e)[:200]})") from None
    # the statistics a fitted recipe's batch transforms normalise with (an image Normalize's), for its input images
    channels: list[int | None] = [*sorted({_IMAGE_CHANNELS[b.cls] for b in blocks[:n_inp] if getattr(
        b, "geometry", None) == "image" and isinstance(getattr(b, "cls", None), str) and b.cls in _IMAGE_CHANNELS})]
    for i, t in enumerate(getattr(recipe, "batch_tfms_", None) or []):
        check_stats = getattr(t, "check_stats", None)
        if not callable(check_stats):
            continue
        try:
            for n_channels in channels or [None]:  # None: statistics for images of channels not known
                check_stats(n_channels)
        except FieldError as e:
            raise ExportError(f"{where}: record.json {e.within(f'dls.recipe.state.batch_tfms_[{i}]')}; the file is "
                              "damaged or was not written by learn.export(): export the trained learner again") from None
    several = isinstance(c, list)  # several targets with a vocab: their vocab and dls.c are one per target
    _check_loss_weights(where, loss, None if several else len(vocab) if isinstance(vocab, (list, tuple)) else c)
    if kind == "pixel_cross_entropy" and isinstance(loss, BaseLoss) and loss.axis != 1:
        # a mask's classes are the channels of (bs, n_classes, h, w) outputs: another axis would softmax over the
        # image's rows or columns and decode nonsense without any error
        raise ExportError(f"{where}: record.json field 'loss.params.axis' is {loss.axis}, but a segmentation mask's "
                          "loss reads the classes on axis 1 of the model's (bs, n_classes, h, w) outputs; the file is "
                          "damaged or was not written by learn.export()")
    try:
        ours = lookup(arch, "arch").__module__.split(".")[0] == "pipekit"
    except UnknownNameError:
        ours = False
    _check_collab_classes(where, model, processor)
    check_rows = getattr(getattr(model, "embeds", None), "check_rows", None)
    if ours and processor is not None and callable(check_rows):  # a tabular net: a table per coded column
        try:
            check_rows(processor.cat_names_, processor.classes_, "arch.config.emb_szs")
        except ExportError as e:
            raise ExportError(f"{where}: record.json {e}") from None
    if not ours or not blocks:
        return
    first = blocks[0]
    convs = _layers(model, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
    mode = getattr(first, "cls", None)
    if getattr(first, "geometry", None) == "image" and mode in _IMAGE_CHANNELS and convs:
        want = convs[0].in_channels
        if _IMAGE_CHANNELS[mode] != want:
            raise ExportError(f"{where}: record.json field 'dls.recipe.state.blocks_[0]' ({type(first).__name__} "
                              f"cls={mode!r}) makes {_IMAGE_CHANNELS[mode]}-channel images, but the model's first "
                              f"layer takes {want} channel(s)")
    embeddings = _layers(model, (nn.Embedding,))
    in_vocab = getattr(first, "vocab", None) if n_inp >= 1 else None
    if isinstance(in_vocab, list) and embeddings and len(in_vocab) != embeddings[0].num_embeddings:
        raise ExportError(f"{where}: record.json field 'dls.recipe.state.blocks_[0]' ({type(first).__name__}) holds a "
                          f"vocabulary of {len(in_vocab)} tokens, but the model embeds "
                          f"{embeddings[0].num_embeddings}")
    pad_idx, model_pad = getattr(first, "pad_idx", None), embeddings[0].padding_idx if embeddings else None
    if isinstance(in_vocab, list) and type(pad_idx) is int and model_pad is not None and model_pad != pad_idx:
        # the encoder zeroes and skips its padding id: another token's would be read as padding without any error
        raise ExportError(f"{where}: record.json field 'arch.config.pad_token' is {model_pad}, but the padding token "
                          f"of the vocabulary of field 'dls.recipe.state.blocks_[0]' ({type(first).__name__}) has id "
                          f"{pad_idx}; the file is damaged or was not written by learn.export()")
    heads = _layers(model, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    # several targets: the outputs are laid out by the user's loss, which the data cannot check
    per_class = (CrossEntropyLossFlat, BCEWithLogitsLossFlat, nn.CrossEntropyLoss, nn.NLLLoss, nn.BCEWithLogitsLoss)
    if kind in ("cross_entropy", "pixel_cross_entropy", "bce") and isinstance(loss, per_class) and heads \
            and not several:
        head = heads[-1]
        out = head.out_features if isinstance(head, nn.Linear) else head.out_channels
        n = len(vocab) if isinstance(vocab, (list, tuple)) else c
        if out == 1 and two_classes_as_labels(dls, loss):  # a single-output binary model: one 0/1 label per item
            return
        if n is not None and (n != out or (c is not None and c != out)):
            field = "dls.recipe.params.processor.state.y_vocab_" if processor is not None else \
                f"dls.recipe.state.blocks_[{n_inp}]"
            raise ExportError(f"{where}: record.json field '{field}' gives {n} class{'es' if n != 1 else ''}"
                              f"{f' {list(vocab)[:5]}' if isinstance(vocab, (list, tuple)) else ''}, but the model's "
                              f"last layer gives {out} scores per item; the file is damaged or was not written by "
                              "learn.export()")


def checkpoint_from_archive(archive: Archive, **kwargs: Any) -> None:
    """``pipekit.load`` of a checkpoint: it holds no model to rebuild, only state for a Learner."""
    raise ExportError(f"{archive.where} is a training checkpoint (learn.save): load it into a Learner built like "
                      "the one that saved it, with learn.load(path); learn.export writes a file pipekit.load opens")


register(checkpoint_from_archive, name="checkpoint", kind="loader")


def _is_device(name: Any) -> bool:
    try:
        torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def load_learner(path: str | os.PathLike | None = None, cpu: bool | None = None,
                 device: str | torch.device | None = None, **kwargs: Any) -> Learner:
    """``pipekit.load`` for a learner export: refuses a file that holds something else. The file's path may be given
    as ``fname=``, fastai's name for it; fastai's ``pickle_module=`` is refused (a pipekit file holds no pickle).

    As in fastai, ``cpu=True`` (what happens when neither ``cpu`` nor ``device`` is given) loads the model onto
    the CPU; ``cpu=False`` onto the GPU when CUDA is available, and otherwise onto the CPU with a warning that
    says so. ``device`` names the device instead (``"cuda:1"``); give one of the two.

    >>> import tempfile, polars as pl, pipekit.datasets as D
    >>> from pipekit.tabular import TabularDataLoaders, tabular_learner
    >>> from pipekit.learn import load_learner
    >>> df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(1000)
    >>> dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education"],
    ...                                  cont_names=["age", "hours-per-week"], bs=64)
    >>> learn = tabular_learner(dls, layers=[16], path=tempfile.mkdtemp())
    >>> loaded = load_learner(learn.export("adult.pipekit"))
    >>> row = df.row(0, named=True)
    >>> loaded.predict(row)[0] == learn.predict(row)[0]
    True
    """
    fname = kwargs.pop("fname", None)
    check_file_kwargs("load_learner", kwargs, ["path", "cpu", "device", "fname"])
    path = one_of_two_names("load_learner", "path", path, "fname", fname)
    if path is None:
        raise ParameterError("load_learner: give the path of the file to load, load_learner(path) (fname= is fastai's "
                             "name for it)")
    if isinstance(cpu, (str, torch.device)) and device is None and _is_device(cpu):
        cpu, device = None, cpu  # load_learner(path, "cuda"): a device given second, as before cpu= came
    check("load_learner", cpu=(cpu, Is(lambda c: c is None or isinstance(c, bool),
                                       "True, False or None (a device goes to device=)")))
    if cpu is not None and device is not None:
        raise ParameterError(f"load_learner: give cpu or device, not both (got cpu={cpu}, device={device!r}); "
                             "cpu=True is device='cpu', cpu=False the GPU when there is one")
    if device is None:
        device = "cpu" if cpu is None or cpu else default_device()
        if cpu is False and torch.device(device).type == "cpu":
            warn("load_learner(cpu=False): no CUDA device is available, so the model stays on the CPU")
    checked_device(device, "load_learner", on_cpu="cpu=True (or device='cpu')")
    check_fork_safe("load_learner")  # rebuilding the data recipe runs Polars work, which would hang there
    archive = read_pipekit(path)
    if archive.kind == "checkpoint":  # pipekit.load says what to do with one
        checkpoint_from_archive(archive)
    if archive.kind != "learner":
        raise ExportError(f"{archive.where} holds a {archive.kind}, not a learner export; open it with pipekit.load")
    with building_from(archive.where):
        return learner_from_archive(archive, device)


def model_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model's weights, by parameter name, from a checkpoint (``learn.save``) or an export.

    >>> import tempfile, torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, model_weights
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, path=tempfile.mkdtemp())
    >>> weights = model_weights(learn.save("stage1"))
    >>> sorted((name, tuple(w.shape)) for name, w in weights.items()), torch.equal(weights["weight"], learn.model.weight)
    ([('bias', (2,)), ('weight', (2, 4))], True)
    """
    archive = read_pipekit(path)
    if archive.kind not in ("checkpoint", "learner"):
        raise ExportError(f"{archive.where} holds a {archive.kind}, not a learner's checkpoint or export")
    return _model_tensors(archive.tensors()) if archive.kind == "checkpoint" else plain_weight_names(archive.tensors())


def _model_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's part of a checkpoint's tensors, by parameter name (:func:`plain_weight_names`)."""
    return plain_weight_names({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})


def plain_weight_names(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` under the model's own names: a file written from a ``torch.compile``'d model by pipekit before
    it stored the compiled model's inner module names every tensor ``_orig_mod.<name>``. The prefix goes only where
    every name has it (a module of the model's own named ``_orig_mod`` is never the whole model)."""
    while weights and all(k.startswith(COMPILED_PREFIX) for k in weights):
        weights = {k[len(COMPILED_PREFIX):]: v for k, v in weights.items()}
    return weights


# ------------------------------------------------------------------------------------------ checkpoints
def checkpoint_path(learn: Learner, name: str | os.PathLike) -> Path:
    """Where ``learn.save(name)`` writes and ``learn.load(name)`` reads, as fastai's: a relative ``name`` (with or
    without folders) under ``learn.path / learn.model_dir``, an absolute one as given; ``.pipekit`` is appended to
    every name but one ending in ``.pipekit`` (or fastai's ``.pth``, which ``learn.load`` then explains), as fastai
    always appends its extension: ``"stage1.v2"`` is ``stage1.v2.pipekit``.

    >>> import tempfile, torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner
    >>> from pipekit.learn.export import checkpoint_path
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, path=tempfile.mkdtemp())
    >>> [checkpoint_path(learn, n).relative_to(learn.path).as_posix() for n in ("best", "best.pipekit", "runs/best")]
    ['models/best.pipekit', 'models/best.pipekit', 'models/runs/best.pipekit']
    >>> [checkpoint_path(learn, n).name for n in ("stage1.v2", f"lr{1e-3}", "best.pth")]
    ['stage1.v2.pipekit', 'lr0.001.pipekit', 'best.pth']
    >>> checkpoint_path(learn, "/data/best").as_posix(), checkpoint_path(learn, "/data/best.pipekit").as_posix()
    ('/data/best.pipekit', '/data/best.pipekit')
    """
    p = learn.path / learn.model_dir / name  # an absolute name stays as it is
    return p if p.suffix in (".pipekit", ".pth") else p.with_name(f"{p.name}.pipekit")


def _no_checkpoint(learn: Learner, name: str | os.PathLike, path: Path) -> str:
    """``learn.load``'s message for a checkpoint not found at ``path``: where a relative name is looked for and, when a
    file is where a name with folders or ``.pipekit`` was once read from (the working folder), that file."""
    msg = (f"Learner.load({os.fspath(name)!r}): no checkpoint at {path.absolute()}; a relative name is looked for "
           f"under learn.path / learn.model_dir = {(learn.path / learn.model_dir).absolute()}, where learn.save(name) "
           "writes it, and an absolute path is used as given (learn.save returns the absolute path it wrote: "
           "learn.load(learn.save('stage1')))")
    p = Path(name)
    if not p.is_absolute() and (p.suffix == ".pipekit" or len(p.parts) > 1):
        old = p if p.suffix else p.with_suffix(".pipekit")  # relative to the working folder
        if (old.exists() or old.is_symlink()) and old.absolute() != path.absolute():
            msg += (f". A checkpoint is at {old.absolute()}, relative to the working folder (where pipekit once "
                    f"looked for such names): load it by its absolute path, learn.load({str(old.absolute())!r})")
    return msg


def _flatten(obj: Any, key: str, tensors: dict[str, torch.Tensor], arrays: dict[str, np.ndarray]) -> Any:
    """``obj`` as plain data: tensors go to ``tensors`` under their path ``key``, arrays to ``arrays``, and
    dictionaries keep the type of their keys (an optimiser's state is keyed by parameter index)."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, (str, int)) or isinstance(k, bool)]
        if bad:
            raise ExportError(f"{key}: keys must be text or integers to be stored, got {bad[:3]}")
        return {"__items__": [[k, _flatten(v, f"{key}.{k}", tensors, arrays)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{key}.{i}", tensors, arrays) for i, v in enumerate(obj)]
    return to_data(obj, arrays, key)


def _unflatten(data: Any, tensors: dict[str, torch.Tensor], arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(data, list):
        return [_unflatten(v, tensors, arrays) for v in data]
    if isinstance(data, dict) and set(data) == {"__tensor__"}:
        if data["__tensor__"] not in tensors:
            raise ExportError(f"the record refers to tensor {data['__tensor__']!r}, which the file does not hold")
        return tensors[data["__tensor__"]]
    if isinstance(data, dict) and set(data) == {"__items__"}:
        items = data["__items__"]
        if not (isinstance(items, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int))
                                                for p in items)):
            raise ExportError("a stored dictionary must be a list of [key, value] pairs with text or integer keys")
        return {k: _unflatten(v, tensors, arrays) for k, v in items}
    return from_data(data, arrays)


def _rng_state() -> dict[str, Any]:
    """Every random generator training draws from: torch (dropout, MixUp's draws, init), CUDA, NumPy, Python."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    version, internal, gauss = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": np.asarray(keys, dtype=np.uint32), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": np.asarray(internal, dtype=np.int64), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # one row per device: a record holds arrays, not lists of them
        out["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return out


def _set_rng_state(state: dict[str, Any]) -> None:
    def byte_state(a: Any) -> torch.Tensor:
        return torch.tensor(np.asarray(a), dtype=torch.uint8)

    torch.set_rng_state(byte_state(state["torch"]))
    n, py = state["numpy"], state["python"]
    np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    random.setstate((int(py["version"]), tuple(int(v) for v in py["internal"]), py["gauss"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([byte_state(t) for t in cuda])


def save_checkpoint(learn: Learner, name: str | os.PathLike, with_opt: bool = True, **kwargs: Any) -> Path:
    """``learn.save``: a checkpoint at ``path/model_dir/name.pipekit`` (:func:`checkpoint_path`) that ``learn.load`` then
    ``fit(..., start_epoch=learn.resume_epoch)`` continue exactly as the uninterrupted fit. Under torchrun
    only rank 0 writes (the others return the path at once); inside ``learn.distributed()`` ``learn.load`` in every
    process waits for it (see :func:`load_checkpoint`).

    Besides the weights and the optimiser state, a checkpoint holds what a resumed fit needs to go on
    exactly as the uninterrupted one: the epoch to resume at, the seed and epoch counter of every loader
    (shuffling and augmentation are drawn from them), the torch/CUDA/NumPy/Python random states (dropout,
    MixUp) and each callback's ``state_dict()`` (the smoothed loss, the best value of a tracker, ...).

    >>> import tempfile, torch
    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import Learner
    >>> from pipekit.vision import ImageDataLoaders
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), path=tempfile.mkdtemp())
    >>> learn.fit(1, 1e-2)
    >>> learn.save("stage1").relative_to(learn.path).as_posix()        # under learn.path / learn.model_dir
    'models/stage1.pipekit'

    The path returned is absolute (links kept as they are), so ``learn.load(learn.save(name))`` reads the file
    written whatever ``learn.path`` is.
    """
    check_file_kwargs("learn.save", kwargs, ["name", "with_opt"])
    path = checkpoint_path(learn, name).absolute()
    if not is_main_process():
        return path
    arrays: dict[str, np.ndarray] = {}
    tensors = {f"model.{k}": v for k, v in unwrapped(learn.model).state_dict().items()}
    record: dict[str, Any] = {
        # epochs finished when saved; fit(..., start_epoch=this) resumes after them
        "next_epoch": learn.epoch + 1 if learn.epoch_done else learn.epoch, "n_epoch": learn.n_epoch,
        "loaders": [{"seed": int(dl.seed), "epoch": int(dl.epoch)} for dl in learn.dls.loaders],
        "rng": to_data(_rng_state(), arrays, "rng"),
        "callbacks": _flatten({key: state for key, cb in state_keys(learn.cbs) if (state := cb.state_dict())}, "callbacks",
                              tensors, arrays),
    }
    if with_opt and learn.opt is not None:
        record["opt"] = _flatten(learn.opt.state_dict(), "opt", tensors, arrays)
    return write_archive(path, "checkpoint", record, arrays, weights=_unshared(tensors))


def load_checkpoint(learn: Learner, name: str | os.PathLike, device: str | torch.device | None = None,
                    with_opt: bool = True, strict: bool = True, restore_state: bool = True) -> Learner:
    """``learn.load``: a checkpoint written by ``learn.save`` (never unpickles code); sets ``resume_epoch``
    and returns the learner. ``restore_state=False`` loads weights (and optimiser) only, leaving the
    epoch counters, loader seeds, random states and callback states alone (used to reload the best model
    at the end of a fit).

    Inside ``learn.distributed()`` under torchrun (the model is the context's DistributedDataParallel one) every
    process calls it, as ``SaveModelCallback`` does at the end of a fit: each waits for the others first, so the file
    rank 0 wrote with ``learn.save`` is complete when it is read (``learn.save`` itself does not wait, so
    ``if is_main_process(): learn.save(name)`` is fine there). Anywhere else it does not wait: after the context,
    ``if is_main_process(): learn.load(name)`` reads at once, and a file another process writes is read once that
    process has said it is written (``torch.distributed.barrier()``).

    ``device`` (a ``torch.device`` or a name such as ``'cpu'`` or ``'cuda:1'``; None: the learner's,
    ``learn.device``) is where the file's weights and optimiser state are read to, as fastai's ``learn.load(name,
    device=...)`` maps them; they are then copied into the model and its optimiser, which stay on ``learn.device``.

    Every field is checked against this learner before anything is set: the weights against the model's names
    and shapes, the optimiser state against its parameter groups and parameters, the epoch, loader counters and
    random states against what they must be. A checkpoint that does not fit raises :class:`ExportError` naming the
    file and the field, and leaves the learner as it was.

    >>> import tempfile, torch
    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import Learner
    >>> from pipekit.vision import ImageDataLoaders
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), path=tempfile.mkdtemp())
    >>> learn.fit(1, 1e-2)
    >>> _ = learn.save("stage1")
    >>> fresh = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), path=learn.path)
    >>> fresh.load("stage1") is fresh, fresh.resume_epoch                # resume_epoch: the epochs done
    (True, 1)
    >>> all(torch.equal(a, b) for a, b in zip(fresh.model.parameters(), learn.model.parameters()))
    True
    """
    if isinstance(device, bool):  # learn.load(name, False): the second argument is the device, as in fastai
        raise ParameterError(f"Learner.load: device={device} is not a device; the second argument is the device "
                             "(learn.load(name, device='cpu')), and with_opt is given by name: "
                             f"learn.load(name, with_opt={device})")
    dev = checked_device(learn.device if device is None else device, "Learner.load")
    if trains_together(learn.model):  # every process of learn.distributed() loads: rank 0 has finished writing
        distrib_barrier()
    path = checkpoint_path(learn, name)
    if not path.exists():
        raise FileNotFoundError(_no_checkpoint(learn, name, path))
    try:
        archive = read_pipekit(path)
    except ExportError as e:
        raise ExportError(f"Learner.load: the file was refused: {e}") from None
    rec, arrays = archive.record, archive.arrays
    if archive.kind != "checkpoint" or not isinstance(rec, dict):
        raise ExportError(f"Learner.load: {path} holds a {archive.kind}, not a checkpoint written by learn.save")
    where = f"Learner.load: {path}"
    try:
        tensors = archive.tensors()
    except ExportError as e:
        raise ExportError(f"Learner.load: {e}") from None
    # the model's and the optimiser's tensors to the device asked for; the callbacks' states stay as read
    tensors = {k: v.to(dev) if k.startswith(("model.", "opt.")) else v for k, v in tensors.items()}
    model = unwrapped(learn.model)  # a compiled learner's model shares the parameters of the one it runs
    weights = _model_tensors(tensors)
    partial = _check_weights(where, model, weights, strict)
    had_opt = learn.opt
    try:
        opt_state = _opt_state(where, learn.optimizer, model, rec["opt"], tensors, arrays) \
            if with_opt and "opt" in rec else None
        resume = _resume_state(path, rec, tensors, arrays) if restore_state else None
    except BaseException:
        learn.opt = had_opt  # an optimiser built to check the state against goes too: nothing changed
        raise
    if resume is not None:  # this learner's callbacks' states, each checked on a copy of its callback first
        for key, cb in state_keys(learn.cbs):
            if key in resume[3]:
                try:
                    copy.copy(cb).state_from_data(dict(resume[3][key]))
                except (ExportError, *STATE_ERRORS) as e:
                    raise ExportError(f"{where}: record.json field 'callbacks.{key}' cannot be taken by its "
                                      f"{type(cb).__name__} ({e}); it was not written by learn.save, or was "
                                      "damaged") from None
    # everything is checked: from here on nothing in the file can fail half-way
    model.load_state_dict(weights, strict=strict)
    if partial:
        warn(f"{where}: strict=False {partial}", RuntimeWarning)
    if opt_state is not None:
        learn.optimizer.load_state_dict(opt_state)
    if resume is None:
        return learn
    learn.resume_epoch, loaders, rng, callbacks = resume
    if with_opt and "opt" not in rec and learn.resume_epoch > 0:
        warn(f"Learner.load: {path} has no optimiser state (saved with with_opt=False); a fit resumed "
             "from it starts the optimiser afresh and will not follow the uninterrupted run",
             RuntimeWarning)
    for dl, (seed, epoch) in zip(learn.dls.loaders, loaders):
        # only the two counters pipekit writes: a name read from the file never picks the attribute
        dl.seed, dl.epoch = dl.seed if seed is None else seed, dl.epoch if epoch is None else epoch
    _set_rng_state(rng)
    learn.resume_cb_states = callbacks
    return learn


#: the floating-point dtypes torch takes a norm of; a tensor of another (float8) is tested number by number
_NORMED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def unusable_weights(own: Mapping[str, torch.Tensor], weights: Mapping[str, Any]) -> list[str]:
    """What in ``weights`` (tensors or arrays read from a file) a model whose state is ``own`` cannot predict with,
    said per entry: numbers of another kind than the model's (integers or booleans for its floating-point weights,
    or the reverse; complex numbers), numbers that are not finite in the model's own dtype (a float64 1e300 becomes
    inf in a float32 model), a batch-norm running variance below zero (each makes predictions NaN or constant
    without any error).

    >>> import torch
    >>> from pipekit.learn.export import unusable_weights
    >>> unusable_weights({"w": torch.zeros(2), "bn.running_var": torch.ones(2)},
    ...                  {"w": torch.tensor([1.0, float("nan")]), "bn.running_var": torch.tensor([1.0, -1.0])})
    ["'bn.running_var' holds a variance below zero", "'w' holds numbers that are not finite"]
    """
    said: list[tuple[str, str]] = []  # (name, what is wrong with it), said in the order of the names
    held: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # an entry of the model's kind: as stored, as it is held
    for k in sorted(set(own) & set(weights)):
        w = weights[k] if isinstance(weights[k], torch.Tensor) else torch.as_tensor(np.asarray(weights[k]))
        if (own[k].is_floating_point() != w.is_floating_point() or w.is_complex()
                or (w.dtype == torch.bool) != (own[k].dtype == torch.bool)):
            said.append((k, f"{k!r} holds {str(w.dtype).replace('torch.', '')} numbers where the model keeps "
                        f"{str(own[k].dtype).replace('torch.', '')}"))
            continue
        # checked as the model will hold them: load_state_dict converts to its dtype (torch has no isfinite for
        # float8, and a float64 1e300 is finite until it becomes a float32); one already in it is checked as it is
        held[k] = w, w.to(own[k].dtype) if w.is_floating_point() and w.dtype != own[k].dtype else w
    # one fused norm over every floating-point tensor says whether all are finite (NaN and inf carry into it; a
    # resnet18 export's 11.7M weights in 3 ms, where isfinite per tensor took 0.7 s); each is tested on its own only
    # where it says no: a NaN or inf, or finite numbers whose norm overflows even in float64
    floats = [v for _, v in held.values() if v.is_floating_point() and v.numel()]
    every_finite = not floats or (all(v.dtype in _NORMED_DTYPES for v in floats) and all_finite_now(floats))
    for k, (w, v) in held.items():
        if v.is_floating_point() and not every_finite and not bool(torch.isfinite(v).all()):
            dtype = str(own[k].dtype).replace("torch.", "")
            said.append((k, f"{k!r} holds numbers that are not finite" if not bool(torch.isfinite(w.double()).all())
                         else f"{k!r} holds numbers too large for the model's {dtype}"))
        elif k.endswith("running_var") and bool((v < 0).any()):
            said.append((k, f"{k!r} holds a variance below zero"))
    return [text for _, text in sorted(said)]


def _check_weights(where: str, model: nn.Module, weights: dict[str, torch.Tensor], strict: bool) -> str:
    """Refuse model weights that ``load_state_dict`` would not load whole: other names (with ``strict``), other
    shapes, or numbers of another kind (floating point for integer counters or the reverse). Without ``strict``,
    refuse weights of which no name is the model's (nothing would load, and the model would stay as it was built);
    where only some are, return what loads and what does not, for a warning ('' where every name matches)."""
    own = model.state_dict()
    matched = set(own) & set(weights)
    if not strict and not matched and (own or weights):
        hint = (f" (names with {COMPILED_PREFIX!r} in them are those of a torch.compile'd submodule: load into a "
                "model compiled the same way, or save from one that is not)"
                if any(COMPILED_PREFIX in k for k in [*weights, *own]) else "")
        raise ExportError(f"{where}: strict=False, but none of the file's {len(weights)} model weights "
                          f"({sorted(weights)[:3]}{' ...' if len(weights) > 3 else ''}) is named as one of this "
                          f"learner's {type(model).__name__}'s {len(own)} ({sorted(own)[:3]}"
                          f"{' ...' if len(own) > 3 else ''}), so nothing would load{hint}; load a checkpoint saved "
                          "by a learner with the same architecture")
    said = _mismatch({k: tuple(v.shape) for k, v in own.items()}, {k: tuple(v.shape) for k, v in weights.items()},
                     strict)
    kinds = [k for k in sorted(set(own) & set(weights)) if own[k].is_floating_point() != weights[k].is_floating_point()
             or weights[k].is_complex() or (weights[k].dtype == torch.bool) != (own[k].dtype == torch.bool)]
    if kinds:
        said = "; ".join(filter(None, [said, f"other number types: {kinds[:3]}{' ...' if len(kinds) > 3 else ''}"]))
    if said:
        raise ExportError(f"{where}: the model weights (weights.safetensors, 'model.*') do not fit this learner's "
                          f"{type(model).__name__} ({said}); load a checkpoint saved by a learner with the same "
                          "architecture, or pass strict=False to load the weights whose names match")
    if strict or (len(matched) == len(own) and len(matched) == len(weights)):
        return ""
    return (f"loaded {len(matched)} of the {len(weights)} model weights in the file into this learner's "
            f"{type(model).__name__}, which has {len(own)}: {len(own) - len(matched)} of the model's keep the values "
            f"they were built with, and {len(weights) - len(matched)} of the file's match no name of the model")


#: torch optimisers whose per-parameter state follows the parameters (moments and buffers of their shape, a
#: step count): pipekit's Adam and the others of that kind (checked beside pipekit's step-function Optimizer,
#: which SGD and RMSProp are)
_PARAM_SHAPED = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.Adagrad,
                 torch.optim.Adadelta, torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam, torch.optim.ASGD)
#: the per-parameter state those optimisers keep as a single number (a 0-d tensor) rather than one per weight
_SCALAR_STATE = frozenset({"step", "eta", "mu", "mu_product"})
#: per-parameter state that is never below zero: step counts and running means of squared gradients
_NON_NEGATIVE_STATE = frozenset({"step", "exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum", "acc_delta",
                                 "sqr_avg", "mu_product", "eta"})


def _kind(v: Any) -> str:
    """What a parameter group's hyper-parameter must stay: torch's on/off options (None or a bool), a number,
    text, a tensor, or a list of that many numbers."""
    if v is None or isinstance(v, bool):
        return "an on/off option (true, false or null)"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, (list, tuple)):
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        return f"a list of {len(v)} numbers" if numbers else "a list"
    if isinstance(v, torch.Tensor):
        return "a tensor"
    if isinstance(v, str):
        return "text"
    return type(v).__name__


def _finite(v: Any) -> bool:
    """No NaN or infinity among the numbers ``v`` is (or holds, as a list)."""
    return all(isinstance(x, bool) or not isinstance(x, (int, float)) or math.isfinite(x)
               for x in (v if isinstance(v, (list, tuple)) else [v]))


def _state_names(opt: torch.optim.Optimizer, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-parameter state each group's options make ``opt``'s class keep, and what each entry is ("param": a
    tensor of the parameter's shape, a tuple: a tensor of that shape, "a count": an integer, None: a number): one
    step of a new optimiser with those options over a two-element stand-in per group (options it cannot step with
    raise here). A step-function :class:`Optimizer` gets its own step functions."""
    standins = []
    for g, cur in zip(groups, opt.param_groups):
        like = cur["params"][0]
        p = torch.zeros(2, dtype=like.dtype, device=like.device, requires_grad=True)
        p.grad = torch.zeros_like(p)
        standins.append({**{k: v for k, v in g.items() if k != "params"}, "params": [p]})
    make: Callable[..., torch.optim.Optimizer] = functools.partial(Optimizer, cbs=opt.cbs) \
        if isinstance(opt, Optimizer) else type(opt)  # the torch classes take (params) alone
    trial = make(standins)
    trial.step()

    def what(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return "param" if tuple(v.shape) == (2,) else tuple(v.shape)
        return "a count" if type(v) is int else None

    return [{k: what(v) for k, v in trial.state[g["params"][0]].items()} for g in standins]


def _check_lookahead(st: dict[str, Any], p: torch.Tensor, field: str, param: str,
                     bad: Callable[[str], ExportError]) -> dict[str, Any]:
    """A parameter's state under :class:`Lookahead` less its slow weights and step count, which must be both there
    (or neither): a floating-point tensor of the parameter's shape and an integer >= 0."""
    ours = {k: st[k] for k in (LOOKAHEAD_SLOW, LOOKAHEAD_COUNT) if k in st}
    problem = lookahead_problem(ours.get(LOOKAHEAD_SLOW), ours.get(LOOKAHEAD_COUNT), p) if ours else None
    if problem is not None:
        raise bad(f"{field}.{problem[0]}' {param} {problem[1]}")
    return {k: v for k, v in st.items() if k not in ours}


def _regrouped(saved: list[Any], current: list[dict[str, Any]]) -> bool:
    """Whether a checkpoint's parameter groups (``saved``) number as many parameters as ``current`` hold, each once
    and in order, as torch numbers them, only cut into other groups (more, fewer, or of other sizes): the same
    model's parameters grouped by another splitter (an older pipekit's layer groups of the architecture). Anything
    else is for the checks."""
    sizes = [len(g["params"]) for g in current]
    if not (isinstance(saved, list) and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in saved)):
        return False
    ids = [j for g in saved for j in g["params"]]
    return (all(type(j) is int for j in ids) and ids == list(range(sum(sizes)))
            and [len(g["params"]) for g in saved] != sizes)


def _opt_state(where: str, opt: Any, model: nn.Module, data: Any, tensors: dict[str, torch.Tensor],
               arrays: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The optimiser state of a checkpoint's ``opt`` field, checked against ``opt`` (the learner's
    ``OptimWrapper``): as many parameter groups with as many parameters each, hyper-parameters of the same kinds,
    a ``frozen_to`` among the layer groups, and state only for listed parameters. For torch's optimisers whose
    state follows the parameters (Adam, SGD, RMSProp, ...) each parameter's state must also hold what a step
    reads, each tensor of the parameter's shape (a single number for the step count)."""
    sd = _rebuild(where, "field 'opt'", lambda: _unflatten(data, tensors, arrays))

    def bad(detail: str) -> ExportError:
        return ExportError(f"{where}: record.json field {detail}; load a checkpoint saved by a learner with the same "
                           "model and optimiser (or pass with_opt=False to leave the optimiser out)")

    if not (isinstance(sd, dict) and "opt" in sd and set(sd) <= {"opt", "frozen_to"}):
        raise bad(f"'opt' must hold the optimiser's state ({{'opt', 'frozen_to'}}), got {str(sd)[:80]!r}")
    frozen = sd.get("frozen_to", 0)
    if not (type(frozen) is int and -opt.n_groups <= frozen <= opt.n_groups):
        raise bad(f"'opt.frozen_to' must be an integer in [-{opt.n_groups}, {opt.n_groups}] (the learner has "
                  f"{opt.n_groups} layer groups), got {str(frozen)[:60]!r}")
    torch_sd = sd["opt"]
    if not (isinstance(torch_sd, dict) and set(torch_sd) == {"state", "param_groups"}
            and isinstance(torch_sd["state"], dict) and isinstance(torch_sd["param_groups"], list)):
        raise bad("'opt.opt' must be a torch optimiser state ({'state': {...}, 'param_groups': [...]})")
    saved, current = torch_sd["param_groups"], opt.param_groups
    if _regrouped(saved, current):
        warn(f"{where}: the checkpoint's optimiser state groups the model's parameters otherwise than this learner's "
             "layer groups (of another splitter, or of an older pipekit's for this architecture): the weights are "
             "loaded and the optimiser starts afresh, as with_opt=False loads it", RuntimeWarning)
        return None
    if len(saved) != len(current):
        raise bad(f"'opt.opt.param_groups' holds {len(saved)} parameter groups; this learner's optimiser has "
                  f"{len(current)}")
    names = {id(p): n for n, p in model.named_parameters()}
    params: dict[int, tuple[int, torch.Tensor]] = {}  # saved index -> (group, this optimiser's parameter)
    groups = []
    for gi, (g, cur) in enumerate(zip(saved, current)):
        field = f"'opt.opt.param_groups[{gi}]"
        ids = g.get("params") if isinstance(g, dict) else None
        # each index an integer before they are put in a set (a list among them cannot be)
        if not (isinstance(ids, list) and len(ids) == len(cur["params"]) and all(type(j) is int for j in ids)
                and len(set(ids)) == len(ids) and not any(j in params for j in ids)):
            raise bad(f"{field}.params' must list {len(cur['params'])} distinct parameter indices (this learner's "
                      f"group {gi}), got {str(ids)[:60]!r}")
        params.update((j, (gi, p)) for j, p in zip(ids, cur["params"]))
        extra = sorted(set(g) - set(cur))
        if extra:
            raise bad(f"{field}' has options {extra[:3]} this learner's {type(opt.opt).__name__} does not take; "
                      "the checkpoint was saved with another optimiser")
        group = {k: g.get(k, v) for k, v in cur.items()}  # an option the saving torch did not write keeps ours
        for k, v in group.items():
            if k != "params" and (_kind(v) != _kind(cur[k]) or not _finite(v)):
                finite = " (finite)" if "number" in _kind(cur[k]) else ""
                raise bad(f"{field}.{k}' must be {_kind(cur[k])}{finite}, got {str(v)[:60]!r}")
        groups.append({**group, "params": ids})
    inner = opt.opt.opt if isinstance(opt.opt, Lookahead) else opt.opt  # Lookahead's own state is checked below
    shaped = isinstance(inner, (*_PARAM_SHAPED, Optimizer))
    if shaped:
        try:
            needed = _state_names(inner, groups)
        except Exception as e:  # noqa: BLE001  (torch raises several types for options it cannot step with)
            raise bad(f"'opt.opt.param_groups' holds options {type(inner).__name__} cannot step with "
                      f"({type(e).__name__}: {str(e)[:120]})") from None
    for j, st in torch_sd["state"].items():
        field = f"'opt.opt.state[{j}]"
        if j not in params:
            raise bad(f"{field}' is the state of parameter {str(j)[:20]!r}, which no parameter group lists")
        gi, p = params[j]
        name = names.get(id(p), str(j))
        if not (isinstance(st, dict) and all(isinstance(k, str) for k in st)):
            raise bad(f"{field}' must map state names to values, got {str(st)[:60]!r}")
        if isinstance(opt.opt, Lookahead):
            st = _check_lookahead(st, p, f"{field}", f"(parameter {name!r}, shape {tuple(p.shape)})", bad)
        missing = sorted(set(needed[gi]) - set(st)) if shaped and st else []
        if missing:
            raise bad(f"{field}' (parameter {name!r}) lacks {missing}, which {type(inner).__name__} reads at "
                      "each step")
        # a step-function Optimizer hands every state entry to its step functions as a keyword: a name no step
        # wrote (an 'lr' among them) would change the step
        extra = sorted(set(st) - set(needed[gi])) if isinstance(inner, Optimizer) else []
        if extra:
            raise bad(f"{field}' (parameter {name!r}) holds {extra[:3]}, which {type(inner).__name__}'s step "
                      "functions do not keep")
        for k, v in st.items():
            # what a step keeps under this name, from the trial step: for pipekit's Optimizer its step functions'
            # entries, for torch's own ("param": a tensor of the parameter's shape, (): a single number)
            want = needed[gi].get(k) if shaped else None
            if isinstance(v, torch.Tensor):
                if v.is_complex() or v.dtype == torch.bool or (want == "param" and not v.is_floating_point()):
                    raise bad(f"{field}.{k}' holds {v.dtype} values; optimiser state is real numbers"
                              + (" (floating point)" if want == "param" else ""))
                if isinstance(inner, Optimizer):
                    shape = tuple(p.shape) if want == "param" else want if isinstance(want, tuple) else None
                else:
                    shape = () if k in _SCALAR_STATE else tuple(p.shape)
                if shaped and tuple(v.shape) != shape:
                    raise bad(f"{field}.{k}' has shape {tuple(v.shape)}, but parameter {name!r} has shape "
                              f"{tuple(p.shape)}" + (" (a step count is a single number)" if shape == () else "")
                              if shape is not None else f"{field}.{k}' must be a number, got a tensor")
                if not bool(torch.isfinite(v).all()) or (k in _NON_NEGATIVE_STATE and bool((v < 0).any())):
                    raise bad(f"{field}.{k}' (parameter {name!r}) holds "
                              + ("numbers that are not finite" if not bool(torch.isfinite(v).all()) else
                                 "a number below zero, where it is a step count or a running mean of squares"))
            elif isinstance(inner, Optimizer) and (want == "a count" or isinstance(want, tuple)):
                if not (want == "a count" and type(v) is int and v >= 0):
                    raise bad(f"{field}.{k}' must be "
                              f"{'a count (an integer >= 0)' if want == 'a count' else 'a tensor'}, got "
                              f"{str(v)[:60]!r}")
            elif want == "param" or (want == () and finite_number(v) is None):
                # a step calls tensor methods on a moment (a null or a number there failed only at the next step, and
                # a null step count of torch's as the state was set, after the weights); torch's optimisers take a
                # plain number for a step count, which their load_state_dict makes a tensor
                raise bad(f"{field}.{k}' (parameter {name!r}) must be "
                          + (f"a tensor of the parameter's shape {tuple(p.shape)}" if want == "param" else
                             "a finite number (a single value, as a step count is)") + f", got {str(v)[:60]!r}")
            elif not (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
                      or (not shaped and isinstance(v, list))):
                raise bad(f"{field}.{k}' must be a tensor or a finite number, got {str(v)[:60]!r}")
    return {"opt": {"state": torch_sd["state"], "param_groups": groups}, "frozen_to": frozen}


def _counter(v: Any) -> bool:
    return type(v) is int and v >= 0


def _resume_state(path: Path, rec: dict[str, Any], tensors: dict[str, torch.Tensor],
                  arrays: dict[str, np.ndarray]) -> tuple[int, list[tuple[int | None, int | None]], dict[str, Any],
                                                          dict[str, Any]]:
    """The epoch to resume at, each loader's (seed, epoch), the random states and the callbacks' states of a
    checkpoint's record, each checked (the random states by setting them on generators of their own)."""
    where = f"Learner.load: {path}"
    nxt = rec.get("next_epoch", 0)
    if not _counter(nxt):
        raise ExportError(f"{where}: record.json field 'next_epoch' must be a non-negative integer (the epoch a "
                          f"resumed fit starts at), got {str(nxt)[:60]!r}")
    saved = rec.get("loaders") or []
    if not isinstance(saved, list):
        raise ExportError(f"{where}: record.json field 'loaders' must be a list of {{'seed', 'epoch'}} objects")
    loaders = []
    for i, s in enumerate(saved):
        if not (isinstance(s, dict) and all(_counter(s[k]) for k in ("seed", "epoch") if k in s)):
            raise ExportError(f"{where}: the loader states are malformed (record.json field 'loaders[{i}]' must be "
                              f"an object with a non-negative integer 'seed' and 'epoch', got {str(s)[:60]!r})")
        loaders.append((s.get("seed"), s.get("epoch")))
    if "rng" not in rec:
        raise ExportError(f"{where}: record.json has no field 'rng' (the random states); it was not written by "
                          "learn.save, or was damaged")
    try:
        rng = from_data(rec["rng"], arrays)
        _check_rng_state(rng)
    except (ExportError, *STATE_ERRORS) as e:
        raise ExportError(f"Learner.load: the random states in {path} are malformed (record.json field 'rng': "
                          f"{e}); it was not written by learn.save, or was damaged") from None
    callbacks = _rebuild(where, "field 'callbacks'",
                         lambda: _unflatten(rec.get("callbacks", {"__items__": []}), tensors, arrays))
    if not (isinstance(callbacks, dict) and all(isinstance(k, str) and isinstance(v, dict)
                                                for k, v in callbacks.items())):
        raise ExportError(f"{where}: record.json field 'callbacks' must map callback names to their states")
    for key, state in callbacks.items():  # a callback's state is its learned attributes (name_), nothing else
        odd = [k for k in state if not (isinstance(k, str) and k.endswith("_") and not k.startswith("_"))]
        if odd:
            raise ExportError(f"{where}: record.json field 'callbacks.{key}' holds {odd[:3]}, which are not learned "
                              "attributes (names ending in '_'); it was not written by learn.save, or was damaged")
    return nxt, loaders, rng, callbacks


def _check_rng_state(state: Any) -> None:
    """Raise unless ``_set_rng_state(state)`` would set every generator: each state is set on a new generator of
    its kind first (a failure there changes nothing)."""
    if not isinstance(state, dict) or not isinstance(state.get("numpy"), dict) or \
            not isinstance(state.get("python"), dict):
        raise ExportError("expected {'torch', 'numpy', 'python'} states")
    torch.Generator().set_state(torch.tensor(np.asarray(state["torch"]), dtype=torch.uint8))
    n, py = state["numpy"], state["python"]
    np.random.RandomState().set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), int(n["pos"]),
                                       int(n["has_gauss"]), float(n["cached_gaussian"])))
    random.Random().setstate((int(py["version"]), tuple(int(v) for v in py["internal"]), py["gauss"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        for i, t in enumerate(cuda):
            if np.asarray(t).shape != tuple(torch.cuda.get_rng_state(i).shape):
                raise ExportError(f"the CUDA random state of device {i} is not one")
