import os
from pathlib import Path

import polars as pl
import pytest

# tests read the real data sets; the Makefile points PIPEKIT_DATA at ../shared/data
_default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not os.environ.get("PIPEKIT_DATA") and _default.exists():
    os.environ["PIPEKIT_DATA"] = str(_default)
os.environ.setdefault("PIPEKIT_QUIET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
_DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
HAVE_DATA = _DATA.is_dir()

if not HAVE_DATA:
    # Without the real data sets the tests that need one are skipped, saying which; the rest run.
    import pipekit.data.external as _external

    def _skip_fetch(info, root=None):
        raise pytest.skip.Exception(f"data set {info.name!r} is not available: set PIPEKIT_DATA to the folder of "
                                    "real data sets", allow_module_level=True)

    _external.fetch = _skip_fetch
    # a docstring example that reads a data set is skipped with its module, not counted as a failure
    import doctest

    _report = doctest.DocTestRunner.report_unexpected_exception

    def _reraise_skip(self, out, test, example, exc_info):
        if isinstance(exc_info[1], pytest.skip.Exception):
            raise exc_info[1]
        return _report(self, out, test, example, exc_info)

    doctest.DocTestRunner.report_unexpected_exception = _reraise_skip


def pytest_addoption(parser, pluginmanager):
    # pyproject.toml's addopts run the suite on pytest-xdist's workers; without the plugin (not installed, or
    # -p no:xdist) its options are taken and ignored, and the tests run in this one process
    if not pluginmanager.has_plugin("xdist"):
        parser.addoption("--numprocesses", default=None, help="ignored: pytest-xdist is not loaded")
        parser.addoption("--dist", default="no", help="ignored: pytest-xdist is not loaded")


def pytest_report_header(config):
    if not config.pluginmanager.has_plugin("xdist"):
        return "pytest-xdist is not loaded: the tests run in this one process (pip install -e '.[dev]' installs it)"
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto`` for a run of a folder (``make test``): one worker per CPU this process may use, at most 2 (each
    worker imports torch and builds its module fixtures again; more workers than CPUs only wait on each other). A run
    of single files or tests stays in this process: starting the workers costs about 10 s.
    PYTEST_XDIST_AUTO_NUM_WORKERS, or -n N, chooses instead."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    if not any(Path(str(arg).split("::")[0]).is_dir() for arg in config.args):
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(2, cpus))


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # one torch thread per worker: the workers already fill the CPUs, and with two threads each, waiting on each
        # other, the demo's fine-tune took 544 s against 116 s on a busy 2-core machine (modules that compare runs
        # set one thread themselves)
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if not HAVE_DATA:
        skip = pytest.mark.skip(reason="needs the real data sets: set PIPEKIT_DATA")
        for item in items:
            if "data" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def reads(monkeypatch):
    """Each image file read from disk by the image cache, counted by path (a Counter)."""
    from collections import Counter

    import pipekit.vision.cache as vision_cache

    seen: Counter[str] = Counter()
    read = vision_cache._read_bytes

    def counting(path):
        seen[os.fspath(path)] += 1
        return read(path)

    monkeypatch.setattr(vision_cache, "_read_bytes", counting)
    return seen


@pytest.fixture(scope="session", autouse=True)
def _caches_to_tmp(tmp_path_factory):
    """PIPEKIT_CACHE and PIPEKIT_PLOTS in a temporary folder of this process (each xdist worker its own) for the whole
    run: module fixtures, built before ``_plots_to_tmp`` gives a test its own folders, write there, not in the
    folders the caller set (the Makefile's .pipekit_cache and out/plots in the checkout), which the workers would
    share and a later run would find filled."""
    root = tmp_path_factory.mktemp("pipekit")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIPEKIT_CACHE", str(root / "cache"))
        patch.setenv("PIPEKIT_PLOTS", str(root / "plots"))
        yield


@pytest.fixture(autouse=True)
def _plots_to_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_PLOTS", str(tmp_path / "plots"))
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Modules that time or compare training runs use one torch thread (repeatable, and fair on 2 cores)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def mnist_dls():
    """mnist_tiny's 3s and 7s, grey, at their own 28x28 (the test/ folder is in neither subset): what a small genuine
    vision export is trained on, and the book's small convolutional nets."""
    import warnings

    import pipekit.datasets as D
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.vision import ImageBlock

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                         splitter=GrandparentSplitter()).dataloaders(D.path("mnist_tiny"), bs=64, seed=42)


@pytest.fixture(scope="module")
def mnist_learner():
    """mnist_tiny's 3s and 7s (an eighth of them), grey, a small CNN trained one epoch."""
    from test_models_helpers import mnist_eighth_learner

    from pipekit.learn import accuracy

    learn = mnist_eighth_learner(metrics=accuracy)
    learn.fit_one_cycle(1, 1e-2)
    return learn


@pytest.fixture(scope="module")
def adult_1500():
    """The first 1,500 rows of adult.csv as Polars reads them: a table small enough to train and export in seconds."""
    import polars as pl

    import pipekit.datasets as D

    return pl.read_csv(D.path("adult_sample") / "adult.csv").head(1500)


@pytest.fixture(scope="module")
def adult_1500_tab(adult_1500):
    """``adult_1500`` as a Tabular of four categories and three numbers, split 80/20 with seed 1."""
    from pipekit.data import RandomSplitter
    from pipekit.tabular import Tabular

    return Tabular(adult_1500, cat_names=["workclass", "education", "marital-status", "occupation"],
                   cont_names=["age", "fnlwgt", "education-num"], y_names="salary", splits=RandomSplitter(0.2, seed=1))


@pytest.fixture(scope="module")
def adult_xy():
    """512 adult rows as chapter 4 builds data: four standardised numbers and the 0/1 salary class."""
    import polars as pl

    import pipekit.datasets as D

    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(512)
    x = df.select(["age", "education-num", "hours-per-week", "fnlwgt"]).fill_null(0).to_numpy().astype("float32")
    x = (x - x.mean(0)) / x.std(0)
    return x, (df["salary"] == ">=50k").to_numpy().astype("int64")


@pytest.fixture
def schema_reads(monkeypatch):
    """Counts the reads of ``pl.DataFrame.schema`` while the test runs (the property, patched to count)."""
    reads = {"n": 0}
    original = pl.DataFrame.schema

    def counted(self):
        reads["n"] += 1
        return original.fget(self)

    monkeypatch.setattr(pl.DataFrame, "schema", property(counted))
    return reads


@pytest.fixture(scope="module")
def forest_file(tmp_path_factory):
    """``(path, df)``: a 5-tree random forest exported after fitting on 800 of adult_sample's first 1,000 rows
    (workclass, sex, age, education-num), and those rows as a Polars frame, for ``pipekit predict``."""
    import pipekit.datasets as D
    from pipekit.backends import RandomForest
    from pipekit.data import RandomSplitter
    from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

    if D.locate("adult_sample") is None:
        pytest.skip("needs adult_sample ($PIPEKIT_DATA)")
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(1000)
    tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass", "sex"],
                  cont_names=["age", "education-num"], y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42))
    rf = RandomForest("classification", n_estimators=5, seed=0, n_jobs=1).fit(tab.train)
    return rf.export(tmp_path_factory.mktemp("model") / "forest.pipekit"), df


@pytest.fixture
def terminal_bars(monkeypatch):
    """Progress bars on, drawn by rich as on a terminal 150 columns wide into the string buffer this gives."""
    import io

    import rich
    import rich.console

    monkeypatch.delenv("PIPEKIT_QUIET", raising=False)
    monkeypatch.setenv("PIPEKIT_PROGRESS", "1")
    out = io.StringIO()
    monkeypatch.setattr(rich, "_console", rich.console.Console(file=out, force_terminal=True, width=150))
    return out


@pytest.fixture
def imdb_text_files(tmp_path):
    """A function writing the first ``n`` imdb_sample reviews as text files in ``tmp_path/texts`` (train/ and
    valid/, one review in five valid, a folder per label) and giving that folder."""
    import polars as pl

    import pipekit.datasets as D

    def write(n: int) -> Path:
        rows = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(n)
        root = tmp_path / "texts"
        for i, (label, text) in enumerate(zip(rows["label"], rows["text"])):
            f = root / ("valid" if i % 5 == 0 else "train") / label / f"{i:03d}.txt"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text, encoding="utf-8")
        return root

    return write
