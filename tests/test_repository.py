"""The repository holds source and documents only: a model export, a cache or a data file written while working
(a docstring example run by hand from the checkout, a recipe's output) is never tracked. Data sets come from
``PIPEKIT_DATA`` and exports are written where the user says, so a tracked one would ship stale bytes."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# what a source tree of pipekit is made of; anything else tracked is a file that work left behind
SOURCE_SUFFIXES = {".py", ".md", ".toml", ".txt", ".ipynb", ".typed", ".gitignore", ""}


def _tracked() -> list[str]:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: the tracked files are what a clone of the repository holds")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p]


def test_only_source_and_documents_are_tracked():
    tracked = _tracked()
    assert "pipekit/__init__.py" in tracked and "README.md" in tracked  # the listing is the repository's
    stray = [p for p in tracked if Path(p).suffix not in SOURCE_SUFFIXES and Path(p).name != ".gitignore"]
    assert not stray, f"tracked files that are not source (exports, data or caches; remove them with git rm): {stray}"


def test_no_tracked_file_is_large():
    big = [(p, (ROOT / p).stat().st_size) for p in _tracked() if (ROOT / p).is_file() and (ROOT / p).stat().st_size > 512_000]
    assert not big, f"tracked files over 500 KB (data belongs under PIPEKIT_DATA, not in the repository): {big}"
