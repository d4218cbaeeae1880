"""Safe export (``learn.export`` / ``load_learner``) and training checkpoints (``learn.save`` / ``learn.load``).

An export is ONE zip file (or a folder with the same files):

- ``recipe.json``: format version, the architecture's registered name and constructor arguments, the
  loss and metric names, and ``dls.state()`` (the data recipe with every fitted transform state);
- ``arrays.npz``: any arrays in that state (loaded with ``allow_pickle=False``);
- ``model.safetensors``: the weights.

Loading reads JSON, NumPy arrays without pickle and safetensors: nothing in the file can run code. Sizes
are checked from the zip directory (or with stat for a folder) before anything is inflated, JSON size and
nesting are capped, and every field of the recipe is type-checked before use (``pipekit.data.archive``);
a malformed file raises :class:`ExportError` naming the member.
Checkpoints (``learn.save``) are torch files loaded with ``weights_only=True`` (torch's restricted
loader that only accepts tensors and plain containers).

>>> # learn.export("model.pipekit"); learn2 = load_learner("model.pipekit"); learn2.predict(item)
"""
from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from pipekit.core.errors import ExportError
from pipekit.core.archive import (MAX_ARRAY_BYTES, MAX_JSON_BYTES, MAX_WEIGHTS_BYTES, parse_json, read_archive,
                                  read_folder, read_npz)
from pipekit.learn.losses import loss_from_json, loss_from_kind, loss_to_json
from pipekit.learn.metrics import metric_from_json, metric_to_json
from pipekit.learn.registry import (UnknownArchError, arch_config_from_json, arch_config_to_json, arch_spec,
                                    build_arch)

__all__ = ["export_learner", "load_learner", "save_checkpoint", "load_checkpoint", "ExportError"]

FORMAT = "pipekit-learner"
VERSION = 1


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, torch.nn.Module) else model


def export_learner(learn: Any, fname: str | os.PathLike = "export.pipekit") -> Path:
    """See ``Learner.export``. A path without a file extension (or an existing folder) gets a folder."""
    from pipekit.learn.distributed import is_main_process

    model = _unwrap(learn.model)
    spec = arch_spec(model)
    if spec is None:
        raise ExportError(
            f"cannot export: the model ({type(model).__name__}) was not built by a registered architecture, so it "
            "could not be rebuilt without unpickling code. Decorate its class or factory with "
            "@pipekit.learn.register_arch('name') and build the model through it (or call "
            "pipekit.learn.set_arch_spec(model, name, config)).")
    name, config = spec
    try:
        config_json = arch_config_to_json(config, where=f"argument of arch {name!r}")
    except TypeError as e:
        raise ExportError(f"cannot export: {e}") from e
    if not hasattr(learn.dls, "state"):
        raise ExportError("cannot export: the DataLoaders have no state(); build them with a DataBlock or a "
                          "domain helper so new items can be encoded at inference time")
    arrays: dict[str, np.ndarray] = {}
    try:
        dls_state = learn.dls.state(arrays)
    except (RuntimeError, ExportError) as e:
        raise ExportError(f"cannot export: {e}. Build the DataLoaders from a DataBlock (or a domain recipe) "
                          "instead of raw stores") from e
    dls_json = json.dumps(dls_state)
    metrics = [metric_to_json(m) for m in learn.metrics]
    recipe = {
        "format": FORMAT, "version": VERSION,
        "arch": {"name": name, "config": config_json},
        "loss": loss_to_json(learn.loss_func),
        "metrics": [m for m in metrics if m is not None],
        "dls": json.loads(dls_json),
        "learner": type(learn).__name__,
        "torch_version": torch.__version__,
    }
    path = Path(fname)
    if not is_main_process():  # under torchrun one process writes the file
        return path
    with tempfile.TemporaryDirectory() as tmp:
        wfile = Path(tmp) / "model.safetensors"
        was_training = model.training
        save_model(model, str(wfile), metadata={"format": FORMAT})
        model.train(was_training)
        files: dict[str, bytes] = {"recipe.json": json.dumps(recipe, indent=1).encode(),
                                   "model.safetensors": wfile.read_bytes()}
        if arrays:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            files["arrays.npz"] = buf.getvalue()
    if path.is_dir() or not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        for k, v in files.items():
            (path / k).write_bytes(v)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v, compress_type=zipfile.ZIP_STORED if k.endswith(".safetensors") else zipfile.ZIP_DEFLATED)
    return path


# the members load_learner reads, with the size cap of each (see pipekit.data.archive for the reasons)
_MEMBERS = {"recipe.json": MAX_JSON_BYTES, "model.safetensors": MAX_WEIGHTS_BYTES, "arrays.npz": MAX_ARRAY_BYTES}


def _read_export(path: Path) -> dict[str, bytearray]:
    if path.is_dir():
        return read_folder(path, _MEMBERS, where=f"load_learner: {path}")
    if not path.exists():
        raise FileNotFoundError(f"load_learner: no such file {path}")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(2)
        kind = " (it looks like a pickle / torch.save file)" if head[:1] == b"\x80" else ""
        raise ExportError(f"load_learner: {path} is not a pipekit export{kind}. A pipekit export is a zip with "
                          "recipe.json and model.safetensors written by learn.export(); pickled files are refused "
                          "because loading them could run arbitrary code.")
    # only the known members are read; anything else in the archive (e.g. a .pkl) is never inflated
    return read_archive(path, _MEMBERS, where=f"load_learner: {path}")


def _expect(value: Any, types: type, field: str, where: str, what: str) -> Any:
    if not isinstance(value, types) or isinstance(value, bool):  # bool is an int to Python, never to a recipe
        raise ExportError(f"{where}: recipe.json field {field!r} must be {what}, got {type(value).__name__} "
                          f"{str(value)[:60]!r}")
    return value


def _check_recipe(recipe: Any, where: str) -> dict[str, Any]:
    """Check the type of every recipe field load_learner uses, before any is used."""
    if not isinstance(recipe, dict):
        raise ExportError(f"{where}: recipe.json must hold a JSON object, got {type(recipe).__name__}")
    if recipe.get("format") != FORMAT:
        raise ExportError(f"{where}: recipe.json has format {recipe.get('format')!r}, expected {FORMAT!r}")
    version = _expect(recipe.get("version"), int, "version", where, "a positive integer")
    if version < 1:
        raise ExportError(f"{where}: recipe.json field 'version' must be a positive integer, got {version}")
    if version > VERSION:
        raise ExportError(f"{where}: recipe.json was written by a newer pipekit (format version {version} > "
                          f"{VERSION}); upgrade pipekit")
    arch = _expect(recipe.get("arch"), dict, "arch", where, "an object with 'name' and 'config'")
    _expect(arch.get("name"), str, "arch.name", where, "a registered architecture name")
    _expect(arch.get("config", {}), dict, "arch.config", where, "an object of constructor arguments")
    entries = [("loss", recipe["loss"])] if recipe.get("loss") is not None else []
    metrics = _expect(recipe.get("metrics", []), list, "metrics", where, "a list of metric objects")
    entries += [(f"metrics[{i}]", m) for i, m in enumerate(metrics)]
    for field, entry in entries:
        _expect(entry, dict, field, where, "an object with 'name' and 'config'")
        _expect(entry.get("name"), str, field + ".name", where, "a registered name")
        _expect(entry.get("config", {}), dict, field + ".config", where, "an object of constructor arguments")
    _expect(recipe.get("dls"), dict, "dls", where, "the DataLoaders state (an object)")
    _expect(recipe.get("learner", "Learner"), str, "learner", where, "a Learner class name")
    return recipe


# what rebuilding an object from a malformed (but well-typed) state raises
_STATE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError, OverflowError)


_DOMAINS = ("pipekit.vision", "pipekit.text", "pipekit.tabular")


def _import_domains() -> bool:
    """Import pipekit's domain packages (they register their blocks, transforms and archs).

    Only pipekit's own modules are imported, never a name read from the file. Returns True if any was new.
    """
    import importlib
    import sys

    new = False
    for mod in _DOMAINS:
        if mod not in sys.modules:
            try:
                importlib.import_module(mod)
                new = True
            except ImportError:  # a domain whose optional dependencies are missing
                continue
    return new


def load_learner(path: str | os.PathLike, device: str | torch.device = "cpu") -> Any:
    """Rebuild an exported Learner for inference, without the training data and without unpickling.

    >>> # learn = load_learner("model.pipekit"); label, idx, probs = learn.predict(item)
    """
    from pipekit.data import DataLoaders
    from pipekit.learn.learner import Learner

    path = Path(path)
    where = f"load_learner: {path}"
    files = _read_export(path)
    for need in ("recipe.json", "model.safetensors"):
        if need not in files:
            raise ExportError(f"{where} has no {need}; it is not a complete pipekit export")
    recipe = _check_recipe(parse_json(files["recipe.json"], where=f"{where}: recipe.json"), where)
    arrays = read_npz(bytes(files["arrays.npz"]), where=f"{where}: arrays.npz") if "arrays.npz" in files else None

    def rebuild(what: str, build: Any) -> Any:
        # a block/transform/arch/loss of a pipekit domain package not imported yet: import them and retry
        try:
            try:
                return build()
            except KeyError:
                if not _import_domains():
                    raise
                return build()
        except ExportError as e:
            raise ExportError(f"{where}: recipe.json {what}: {e}") from None
        except UnknownArchError as e:
            raise ExportError(f"{where}: recipe.json: {e}") from e
        except _STATE_ERRORS as e:
            # a registry's KeyError carries a sentence; a bare KeyError carries the missing key
            sentence = isinstance(e, KeyError) and len(e.args) == 1 and " " in str(e.args[0])
            msg = e.args[0] if sentence else f"missing key {e}" if isinstance(e, KeyError) else e
            raise ExportError(f"{where}: recipe.json {what} could not be rebuilt ({type(e).__name__}: {msg})") from e

    dls = rebuild("field 'dls'", lambda: DataLoaders.from_state(recipe["dls"], arrays, device=device))
    arch = recipe["arch"]
    model = rebuild(f"architecture {arch['name']!r}",
                    lambda: build_arch(arch["name"], arch_config_from_json(arch.get("config", {}))))
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"{where}: architecture {arch['name']!r} built a {type(model).__name__}, not a torch module")
    with tempfile.TemporaryDirectory() as tmp:
        wfile = Path(tmp) / "model.safetensors"
        wfile.write_bytes(files["model.safetensors"])
        try:
            load_model(model, str(wfile), strict=True, device=str(device))
        except Exception as e:  # safetensors raises its own error type for a bad header
            raise ExportError(f"{where}: the weights (model.safetensors) could not be read as safetensors for arch "
                              f"{arch['name']!r} ({type(e).__name__}: {e}); the file is damaged or was "
                              "not written by learn.export()") from e
    if recipe.get("loss") is not None:
        loss = rebuild(f"loss {recipe['loss']['name']!r}", lambda: loss_from_json(recipe["loss"]))
    else:
        loss = rebuild("default loss (no 'loss' field)",
                       lambda: loss_from_kind(getattr(getattr(dls, "y_block", None), "loss_kind", None)))
    metrics = [rebuild(f"metric {m['name']!r}", lambda m=m: metric_from_json(m)) for m in recipe.get("metrics", [])]
    learner_cls = _learner_class(recipe.get("learner", "Learner"), Learner)
    learn = learner_cls(dls, model, loss_func=loss, metrics=metrics, device=device)
    learn.model.eval()
    return learn


def _learner_class(name: str, base: type) -> type:
    """The Learner subclass an export was made with (e.g. a text learner keeps its text ``predict``).

    Only subclasses already defined by imported pipekit modules are candidates: a name read from the file
    never causes an import of its own.
    """
    def find() -> type | None:
        todo = [base]
        while todo:
            cls = todo.pop()
            if cls.__name__ == name:
                return cls
            todo.extend(cls.__subclasses__())
        return None

    found = find()
    if found is None and _import_domains():
        found = find()
    return found or base


# ---------------------------------------------------------------- checkpoints
def _has_loaders(dls: Any) -> bool:
    loaders = getattr(dls, "loaders", None)
    return bool(loaders) if loaders is not None else hasattr(dls, "train")


def _ckpt_path(learn: Any, name: str | os.PathLike) -> Path:
    p = Path(name)
    if p.suffix == ".pth" or p.is_absolute() or len(p.parts) > 1:
        return p if p.suffix else p.with_suffix(".pth")
    return Path(learn.path) / learn.model_dir / f"{name}.pth"


def _rng_state() -> dict[str, Any]:
    """Every random generator training draws from, as tensors and plain numbers (loadable weights_only)."""
    import random

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),  # dropout, MixUp's Beta draws and permutations, init
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss": None if gauss is None else float(gauss)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def _set_rng_state(state: dict[str, Any]) -> None:
    import random

    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "numpy" in state:
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), int(n["pos"]),
                             int(n["has_gauss"]), float(n["cached_gaussian"])))
    if "python" in state:
        py = state["python"]
        random.setstate((int(py["version"]), tuple(int(v) for v in py["internal"].tolist()), py["gauss"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([t.cpu() for t in cuda])


def save_checkpoint(learn: Any, name: str | os.PathLike, with_opt: bool = True) -> Path:
    """See ``Learner.save``. Under torchrun only rank 0 writes (the others return the path).

    Besides the weights and the optimiser state, a checkpoint holds what a resumed fit needs to go on
    exactly as the uninterrupted one: the epoch to resume at, the seed and epoch counter of every loader
    (shuffling and augmentation are drawn from them), the torch/CUDA/NumPy/Python random states (dropout,
    MixUp) and each callback's ``state_dict()`` (the smoothed loss, the best value of a tracker, ...).
    """
    from pipekit.learn.distributed import is_main_process

    path = _ckpt_path(learn, name)
    if not is_main_process():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = _rng_state()
    state: dict[str, Any] = {
        "format": "pipekit-checkpoint",
        "model": _unwrap(learn.model).state_dict(),
        # epochs finished when saved; fit(..., start_epoch=this) resumes after them
        "next_epoch": int(learn.epoch) + 1 if getattr(learn, "_epoch_done", False) else int(learn.epoch),
        "n_epoch": int(learn.n_epoch),
        "torch_rng": rng.pop("torch"),
        "rng": rng,
    }
    if _has_loaders(learn.dls):
        loaders = getattr(learn.dls, "loaders", None) or [learn.dls.train]
        state["loaders"] = [{k: int(getattr(dl, k)) for k in ("seed", "epoch") if isinstance(getattr(dl, k, None),
                                                                                        (int, np.integer))}
                            for dl in loaders]
    if with_opt and learn.opt is not None:
        state["opt"] = learn.opt.state_dict()
    cb_states = {cb.name: cb.state_dict() for cb in learn.cbs}
    state["callbacks"] = {k: v for k, v in cb_states.items() if v}
    torch.save(state, path)
    return path


def load_checkpoint(learn: Any, name: str | os.PathLike, with_opt: bool = True, strict: bool = True,
                    restore_state: bool = True) -> None:
    """See ``Learner.load``. ``restore_state=False`` loads weights (and optimiser) only, leaving the
    epoch counters, loader seeds, random states and callback states alone (used to reload the best model
    at the end of a fit)."""
    path = _ckpt_path(learn, name)
    if not path.exists():
        raise FileNotFoundError(f"Learner.load: no checkpoint at {path} (saved with learn.save({Path(name).stem!r}) "
                                f"under path/model_dir = {Path(learn.path) / learn.model_dir})")
    try:
        state = torch.load(path, map_location=learn.device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError) as e:
        raise ExportError(f"Learner.load: {path} holds objects other than tensors and plain data, so it is refused "
                          f"(loading it could run code). Details: {e}") from e
    if not isinstance(state, dict) or state.get("format") != "pipekit-checkpoint":
        raise ExportError(f"Learner.load: {path} is not a pipekit checkpoint (written by learn.save)")
    _unwrap(learn.model).load_state_dict(state["model"], strict=strict)
    if with_opt and "opt" in state:
        if learn.opt is None:
            learn.create_opt()
        learn.opt.load_state_dict(state["opt"])
    if not restore_state:
        return
    learn.resume_epoch = int(state.get("next_epoch", 0))
    if with_opt and "opt" not in state and learn.resume_epoch > 0:
        import warnings

        warnings.warn(f"Learner.load: {path} has no optimiser state (saved with with_opt=False); a fit resumed "
                      "from it starts the optimiser afresh and will not follow the uninterrupted run",
                      RuntimeWarning, stacklevel=3)
    try:
        if _has_loaders(learn.dls):
            saved = state.get("loaders")
            if saved is None and "dl_epoch" in state:  # checkpoints written before loader seeds were kept
                saved = [{"epoch": state["dl_epoch"]}]
            for dl, s in zip(getattr(learn.dls, "loaders", None) or [learn.dls.train], saved or []):
                # only the two counters pipekit writes: a name read from the file never picks the attribute
                if "seed" in s and hasattr(dl, "seed"):
                    dl.seed = int(s["seed"])
                if "epoch" in s and hasattr(dl, "epoch"):
                    dl.epoch = int(s["epoch"])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"].cpu())
        _set_rng_state(state.get("rng", {}))
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise ExportError(f"Learner.load: the loader or random states in {path} are malformed ({e}); it was "
                          "not written by learn.save, or was damaged") from e
    callbacks = state.get("callbacks", {})
    learn._resume_cb_states = dict(callbacks) if isinstance(callbacks, dict) else {}
