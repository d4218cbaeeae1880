"""pipekit where the environment is not a developer's own: no home folder (a container run under a user id with no
entry in the user database, HOME unset), ``PIPEKIT_DATA`` written with ``~`` or as a relative folder, and the
recipes under ``python -O``/``-OO`` (no docstrings, no ``assert``)."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipekit.core.errors import ParameterError
from pipekit.data.external import data_root, pipekit_cache_dir

pytestmark = pytest.mark.data

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
RECIPES = Path(__file__).resolve().parents[1] / "recipes"

# a user id with no entry in the user database and no HOME: os.path.expanduser("~") finds no home
NO_HOME = """
import os, pwd
def no_entry(uid):
    raise KeyError(f"getpwuid(): uid not found: {uid}")
pwd.getpwuid = no_entry
os.environ.pop("HOME", None)
assert os.path.expanduser("~") == "~"

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, ColReader, DataBlock, RandomSplitter, RegressionBlock
from pipekit.data.external import URLs, pipekit_cache_dir

# the README's "Ten lines": the data set is in PIPEKIT_DATA, nothing needs the cache
dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"), get_y=ColReader("salary"),
                   splitter=RandomSplitter(valid_pct=0.2, seed=42))
dls = dblock.dataloaders(D.path("adult_sample") / "adult.csv", bs=64, seed=42)
print("batch", tuple(dls.one_batch()[0].shape))
print("path", URLs.path("adult_sample"))
try:
    pipekit_cache_dir("images")
except ParameterError as e:
    print("cache:", e)
"""


def test_lookups_need_no_home_folder_and_the_cache_names_its_fix():
    env = {k: v for k, v in os.environ.items() if k not in ("PIPEKIT_CACHE", "HOME")}
    done = subprocess.run([sys.executable, "-c", NO_HOME], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "batch (64, 1)" in lines and f"path {DATA / 'adult_sample'}" in lines
    said = next(line for line in lines if line.startswith("cache:"))
    assert "no home folder" in said and "set PIPEKIT_CACHE to an absolute folder" in said


def test_pipekit_data_expands_the_home_folder(tmp_path, monkeypatch):
    import pipekit.datasets as D

    (tmp_path / "sets").symlink_to(DATA, target_is_directory=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PIPEKIT_DATA", "~/sets")
    assert data_root() == tmp_path / "sets"
    assert D.path("adult_sample") == tmp_path / "sets" / "adult_sample"


@pytest.mark.parametrize("var,read", [("PIPEKIT_DATA", data_root), ("PIPEKIT_CACHE", pipekit_cache_dir)])
def test_a_relative_data_or_cache_folder_is_refused_alike(var, read, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(var, "sets")
    with pytest.raises(ParameterError, match=rf"{var}='sets' is a relative folder.*{tmp_path / 'sets'}.*absolute"):
        read()
    monkeypatch.setenv(var, "~pipekit_no_such_user_x/sets")
    with pytest.raises(ParameterError, match=rf"{var}='~pipekit_no_such_user_x/sets' is a relative folder .*no user"):
        read()


def test_a_recipe_shows_its_help_under_python_OO(tmp_path):
    done = subprocess.run([sys.executable, "-OO", "-m", "pipekit", "run", "imdb_sample", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: pipekit run imdb_sample")


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.py")), ids=lambda p: p.stem)
def test_recipe_self_checks_are_kept_under_python_O(recipe):
    # python -O drops assert statements: a recipe's checks of its own results are explicit ifs that raise
    asserts = [n.lineno for n in ast.walk(ast.parse(recipe.read_text(encoding="utf-8"))) if isinstance(n, ast.Assert)]
    assert not asserts, f"{recipe.name}: assert on lines {asserts}"
