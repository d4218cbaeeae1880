"""Fitted state as plain data: JSON for structure, an .npz (read without pickle) for arrays.

Nothing here ever unpickles, so loading a file written by someone else cannot run their code. Files
are read through :mod:`pipekit.data.archive`, which bounds what a hostile file can make pipekit
allocate; every malformed file raises :class:`ExportError`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from pipekit.data.archive import ExportError, parse_json, read_npz

_ARRAY_KEY = "__array__"


def to_jsonable(obj: Any, arrays: dict[str, np.ndarray] | None = None, prefix: str = "a") -> Any:
    """Turn ``obj`` into JSON-able data; numpy arrays/tensors go into ``arrays`` (or inline lists if None)."""
    try:
        import torch

        if isinstance(obj, torch.Tensor):
            obj = obj.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(obj, np.ndarray):
        if arrays is None:
            return obj.tolist()
        if obj.dtype == object:
            raise TypeError(f"cannot serialise an object array at {prefix}; convert it to str or numbers first")
        key = f"{prefix}_{len(arrays)}"
        arrays[key] = obj
        return {_ARRAY_KEY: key}
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, arrays, prefix) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, arrays, prefix) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot serialise {type(obj).__name__} ({obj!r:.80}); state must be plain data "
                    "(numbers, strings, lists, dicts, numpy arrays)")


def from_jsonable(obj: Any, arrays: dict[str, np.ndarray] | None) -> Any:
    """Inverse of :func:`to_jsonable`."""
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY_KEY}:
            key = obj[_ARRAY_KEY]
            if arrays is None:
                raise ExportError(f"state references array {key!r} but no array file was given")
            if not isinstance(key, str) or key not in arrays:
                raise ExportError(f"state references array {key!r}, which the array file does not hold "
                                  f"(it holds {sorted(arrays)[:10]})")
            return arrays[key]
        return {k: from_jsonable(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_jsonable(v, arrays) for v in obj]
    return obj


def save_state(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as ``path`` (JSON) plus ``path`` with suffix .npz when it holds arrays.

    >>> p = save_state({"mean": np.arange(3.0), "vocab": ["a", "b"]}, "/tmp/pk_state.json")
    >>> load_state(p)["vocab"]
    ['a', 'b']
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    data = to_jsonable(obj, arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    npz = path.with_suffix(".npz")
    if arrays:
        np.savez(npz, **arrays)
    elif npz.exists():
        npz.unlink()
    return path


def load_state(path: str | os.PathLike) -> Any:
    """Read what :func:`save_state` wrote, never unpickling (sizes and nesting bounded, see ``archive``)."""
    from pipekit.data.archive import read_file

    path = Path(path)
    npz = path.with_suffix(".npz")
    arrays = read_npz(npz, where=str(npz)) if npz.exists() else None
    return from_jsonable(parse_json(read_file(path, where=str(path)), where=str(path)), arrays)


def dumps(obj: Any) -> tuple[str, dict[str, np.ndarray]]:
    """Serialise to a JSON string and a dict of arrays (for callers that pack them into one archive)."""
    arrays: dict[str, np.ndarray] = {}
    return json.dumps(to_jsonable(obj, arrays)), arrays


def loads(text: str | bytes, arrays: dict[str, np.ndarray] | None, where: str = "state") -> Any:
    """Inverse of :func:`dumps` (the JSON's size and nesting are bounded, see ``archive.parse_json``)."""
    return from_jsonable(parse_json(text, where=where), arrays)
