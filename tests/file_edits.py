"""Shared helpers for the tests of edited files: a copy of a real pipekit file with its record edited, and the check
that a reader refuses one quickly (no tests here)."""
from __future__ import annotations

import json
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipekit.core import ExportError


def refused_quickly(load: Callable[[Path], Any], path: Path, match: str | None = None,
                    named: tuple[str, ...] | None = None, seconds: float = 5, megabytes: int = 100) -> str:
    """``load(path)`` raises an ExportError (matching ``match``; with ``named``, naming the file and each of those)
    in under ``seconds`` of this process's CPU time (a machine busy with other work does not count), with no long
    wait (on a read or a lock), and ``megabytes`` traced; returns its message."""
    tracemalloc.start()
    start, began = time.process_time(), time.perf_counter()
    try:
        with pytest.raises(ExportError, match=match) as e:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    took, waited = time.process_time() - start, time.perf_counter() - began
    assert took < seconds, f"refusing {path.name} took {took:.1f} s of CPU time"
    assert waited < 60 + 10 * seconds, f"refusing {path.name} waited {waited:.0f} s"  # not stuck on a read or a lock
    assert peak < megabytes * 2**20, f"refusing {path.name} traced {peak / 2**20:.0f} MB"
    for n in (str(path), *named) if named is not None else ():
        assert n in str(e.value), str(e.value)
    return str(e.value)


def edited_copy(path: Path, edit: Callable[[Any], Any], out: Path, part: Callable[[dict], Any] = lambda r: r) -> Path:
    """The pipekit file ``path`` with ``edit(part(record))`` applied to its record.json (in place), written to
    ``out``; the other members are copied as they are."""
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    record = json.loads(files["record.json"])
    edit(part(record))
    files["record.json"] = json.dumps(record).encode()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out


def component_records(node: Any, cls: str | None = None) -> Iterator[dict]:
    """Every component record (a dict with ``class`` and ``params``) in a file's record tree, of class ``cls`` only
    when given (``"pipekit.backends.GBM"``)."""
    if isinstance(node, dict):
        if "class" in node and "params" in node and cls in (None, node["class"]):
            yield node
        for v in node.values():
            yield from component_records(v, cls)
    elif isinstance(node, list):
        for v in node:
            yield from component_records(v, cls)
