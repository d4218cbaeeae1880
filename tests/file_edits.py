"""Shared helper for the tests of edited files: a copy of a real pipekit file with its record edited (no tests here)."""
from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
