"""Patterns and vocabularies read from a file are checked as the file is loaded: a RegexLabeller's pattern that only
Python's backtracking ``re`` can run must have a bounded time, a text tokenizer's stored subword model goes through
the checks HFTokenizer's tokenizer does, and learned vocabularies must be what fitting makes (distinct labels of one
plain type). A file that breaks these is an ExportError naming the field, never a load that hangs or panics later.

Real data: dogscats' file names (labelled by pattern), imdb_sample's texts (tokenized and numericalized).
"""
from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import pytest

import pipekit
from pipekit.core.errors import ExportError
from pipekit.data.getters import RegexLabeller


def _tampered(path: Path, edit, out: Path) -> Path:
    """The pipekit file ``path`` with ``edit(record)`` applied to its record.json, written to ``out``."""
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    record = json.loads(files["record.json"])
    edit(record)
    files["record.json"] = json.dumps(record).encode()
    with zipfile.ZipFile(out, "w") as z:
        for n, v in files.items():
            z.writestr(n, v)
    return out


@pytest.fixture(scope="module")
def cat_paths() -> list[str]:
    folder = Path(os.environ["PIPEKIT_DATA"]) / "dogscats" / "train" / "cats"
    return sorted(str(p) for p in folder.iterdir())[:20]


# ------------------------------------------------------------------------------------------- RegexLabeller
@pytest.mark.parametrize("pat", [r"(?=(a+)+$)(x)", r"(?=(\w+)*!)(\w)", r"(.)(?:\1)+"])
def test_regex_labeller_refuses_unbounded_python_only_pattern_from_file(tmp_path, pat):
    saved = pipekit.save(RegexLabeller(r"/([^/]+)\.\d+\.jpg$"), tmp_path / "rl.pipekit")
    bad = _tampered(saved, lambda r: r["params"].update(pat=pat), tmp_path / "bad.pipekit")
    t = time.time()
    with pytest.raises(ExportError, match=r"field 'params\.pat'.*backtracking"):
        pipekit.load(bad)
    assert time.time() - t < 5


def test_regex_labeller_from_file_keeps_linear_and_bounded_patterns(tmp_path, cat_paths):
    # Polars runs the first; the second has a look-behind (Python's re) that the time check accepts
    for pat in (r"/([^/]+)\.\d+\.jpg$", r"(?<=/)([a-z]+)\."):
        g = pipekit.load(pipekit.save(RegexLabeller(pat), tmp_path / "rl.pipekit"))
        assert g.pat == pat
        assert [g(p) for p in cat_paths] == ["cat"] * len(cat_paths)


def test_regex_labeller_in_a_recipe_file_is_checked(tmp_path, cat_paths):
    from pipekit.data import CategoryBlock, DataBlock, RandomSplitter
    from pipekit.vision import ImageBlock
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=RegexLabeller(r"/([a-z]+)\.\d+\.jpg$"),
                       splitter=RandomSplitter(seed=0))
    saved = pipekit.save(dblock, tmp_path / "db.pipekit")

    def edit(r):
        r["params"]["get_y"]["params"]["pat"] = r"(?=(a+)+$)(x)"
    with pytest.raises(ExportError, match=r"field 'params\.get_y\.params\.pat'"):
        pipekit.load(_tampered(saved, edit, tmp_path / "bad.pipekit"))
