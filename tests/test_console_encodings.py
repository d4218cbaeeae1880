"""What pipekit prints and writes where the console is not UTF-8, and names shown as the user gave them: a printed
table on a cp1252 or ASCII stdout (a Windows console redirected to a file, the C locale), the not-found message of
``learn.load`` and the loss graph's file."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.data

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))

# the README's Tabular(...).show(3) on adult_sample; ``sys.argv[2]``, if given, is written as every row's workclass
SHOW = """
import sys
import pandas as pd
from pipekit.data import RandomSplitter
from pipekit.tabular import Tabular
df = pd.read_csv(sys.argv[1])
if len(sys.argv) > 2:
    df["workclass"] = sys.argv[2]
to = Tabular(df, cat_names=["workclass"], cont_names=["age"], y_names="salary", splits=RandomSplitter(0.2, seed=0))
to.show(3)
print("shown")
"""
BOXES = set("┌─┬┐│┆╞═╪╡└┴┘")


def show_on(encoding: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUTF8", "LC_ALL", "LANG")}
    env.update(PYTHONIOENCODING=encoding, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-c", SHOW, str(DATA / "adult_sample" / "adult.csv"), *args],
                          capture_output=True, env=env, timeout=300)


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_a_table_prints_with_ascii_borders_on_a_console_that_cannot_write_box_drawing(encoding):
    done = show_on(encoding)
    assert done.returncode == 0, done.stderr.decode(encoding, "replace")[-2000:]
    out = done.stdout.decode(encoding)  # what the console can write, and nothing else
    assert out.rstrip().endswith("shown")
    lines = out.splitlines()
    header = next(line for line in lines if "workclass" in line)
    assert "age" in header and "salary" in header and header.startswith("|")
    assert lines[0].startswith("+-") and not BOXES & set(out)


def test_a_value_the_console_cannot_write_is_printed_as_its_escape():
    done = show_on("ascii", "Privé")
    assert done.returncode == 0, done.stderr.decode("ascii", "replace")[-2000:]
    out = done.stdout.decode("ascii")
    assert out.count("Priv\\xe9") == 3
    # on a cp1252 console the same value is written as it is
    done = show_on("cp1252", "Privé")
    assert done.returncode == 0 and done.stdout.decode("cp1252").count("Privé") == 3


def test_the_table_of_an_escaped_value_keeps_its_columns_aligned():
    import io

    import polars as pl

    from pipekit.data.plotting import _table_text

    frame = pl.read_csv(DATA / "adult_sample" / "adult.csv", n_rows=3).select("age", "workclass")
    frame = frame.with_columns(pl.Series("workclass", ["Privé", None, " Private"]))
    text = _table_text(frame, io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    text.encode("ascii")
    widths = {len(line) for line in text.splitlines()}
    assert len(widths) == 1 and "Priv\\xe9" in text and "null" in text


def test_load_names_the_checkpoint_as_it_was_given(tmp_path):
    from pipekit.data import DataLoaders
    from pipekit.learn import Learner

    ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
                    loss_func=F.cross_entropy, path=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"^Learner\.load\('runs/stage1'\): no checkpoint at "
                                                 rf"{tmp_path / 'models' / 'runs' / 'stage1.pipekit'};") as e:
        learn.load("runs/stage1")
    assert "saved with learn.save" not in str(e.value)  # the file is not one learn.save('runs/stage1') wrote


def test_the_loss_graph_names_the_file_it_writes(mnist_learner, tmp_path):
    from pipekit.learn import Learner, ShowGraphCallback

    learn = Learner(mnist_learner.dls, mnist_learner.model, loss_func=mnist_learner.loss_func)
    cb = ShowGraphCallback(path=tmp_path / "loss")
    learn.fit(1, 1e-3, cbs=cb)
    assert cb.file_ == tmp_path / "loss.png" and cb.file_.stat().st_size > 1000
    (tmp_path / "graphs").mkdir()
    with pytest.raises(ValueError, match="is a folder; give a file name"):
        learn.fit(1, 1e-3, cbs=ShowGraphCallback(path=tmp_path / "graphs"))
    assert len(learn.recorder.values) == 0  # refused before the fit trained anything


# a tiny ensemble of two forests on adult_sample, its report printed
REPORT = """
import sys
import polars as pl
from pipekit.backends import RandomForest
from pipekit.data import RandomSplitter
from pipekit.ensemble import MeanEnsemble
from pipekit.tabular import Categorify, FillMissing, Tabular
df = pl.read_csv(sys.argv[1], n_rows=600)
tab = Tabular(df, procs=[Categorify, FillMissing], cat_names=["workclass", "education"], cont_names=["age"],
              y_names="salary", splits=RandomSplitter(0.3, seed=0))
members = [RandomForest("classification", n_estimators=5, n_jobs=1, seed=s).fit(tab.train) for s in (0, 1)]
MeanEnsemble(members).fit(tab.valid).print_report()
print("reported")
"""


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_an_ensembles_report_prints_on_a_console_that_cannot_write_box_drawing(encoding):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUTF8", "LC_ALL", "LANG")}
    env.update(PYTHONIOENCODING=encoding, MPLBACKEND="Agg", PIPEKIT_QUIET="1")
    done = subprocess.run([sys.executable, "-c", REPORT, str(DATA / "adult_sample" / "adult.csv")],
                          capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode(encoding, "replace")[-2000:]
    out = done.stdout.decode(encoding)
    assert out.rstrip().endswith("reported") and not BOXES & set(out)
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["0:RandomForest", "1:RandomForest", "MeanEnsemble"], out
