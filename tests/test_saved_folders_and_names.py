"""Where saved models go and how they are read back: an export written as a folder (a name without an extension) is
read by ``pipekit predict`` and ``load_pickle`` as by ``pipekit.load``; ``pipekit.save`` and ``save_pickle`` put a
relative name under the working folder for a learner too, where ``pipekit.load`` and ``load_pickle`` look; what
``pipekit.save`` cannot write (a processed table, frames, arrays) is refused naming what writes it; and a pickled
``.pth`` given as ``pretrained=`` is refused in pipekit's words, without torch's advice to unpickle it."""
from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.cli import main
from pipekit.core import DataError, ExportError
from pipekit.core.archive import REPLACING_MARKER, is_export_folder
from pipekit.tabular import Tabular, TabularDataLoaders, load_pickle, save_pickle, tabular_learner

pytestmark = pytest.mark.data

CATS, CONTS = ["workclass", "education"], ["age", "hours-per-week"]


@pytest.fixture(scope="module")
def adult():
    return pl.read_csv(D.path("adult_sample") / "adult.csv").head(800)


@pytest.fixture(scope="module")
def adult_learner(adult, tmp_path_factory):
    """A tabular learner on 800 adult rows whose learn.path is a folder of its own (as a loader's data folder is)."""
    dls = TabularDataLoaders.from_df(adult, path=tmp_path_factory.mktemp("adult_data"), y_names="salary",
                                     cat_names=CATS, cont_names=CONTS, bs=64, seed=0)
    learn = tabular_learner(dls, layers=[8])
    learn.fit(1, 1e-2)
    return learn


def _predicted(capsys, model, rows) -> list[str]:
    assert main(["predict", str(model), str(rows)]) == 0
    return capsys.readouterr().out.splitlines()


# ------------------------------------------------------------------------------------- exports written as folders
def test_pipekit_predict_reads_a_learner_exported_to_a_folder(adult, adult_learner, tmp_path, capsys):
    folder = adult_learner.export(tmp_path / "adult_model")
    assert folder.is_dir() and is_export_folder(folder)
    rows = tmp_path / "rows.csv"
    adult.slice(700, 6).write_csv(rows)
    got = _predicted(capsys, folder, rows)
    # the same predictions as from the zip export of the same learner
    assert got == _predicted(capsys, adult_learner.export(tmp_path / "adult.pipekit"), rows)
    assert len(got) == 6 and all(line.split("\t")[1] in ("<50k", ">=50k") for line in got)


def test_pipekit_predict_still_refuses_a_folder_that_is_no_export(adult, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "manifest.json").write_text('{"name": "a web app"}')  # another program's manifest
    with pytest.raises(SystemExit) as e:
        main(["predict", "other", "rows.csv"])
    assert "'other' is a folder, not a model file" in str(e.value.code)


def test_pipekit_predict_says_an_interrupted_folder_export_is_incomplete(adult_learner, tmp_path):
    folder = adult_learner.export(tmp_path / "adult_model")
    os.replace(folder / "manifest.json", folder / REPLACING_MARKER)  # as an export killed part-way leaves it
    with pytest.raises(SystemExit) as e:
        main(["predict", str(folder), str(tmp_path / "rows.csv")])
    assert "an export into this folder was stopped before it finished" in str(e.value.code)


def test_load_pickle_reads_a_model_and_a_learner_saved_to_a_folder(adult, adult_learner, tmp_path):
    from pipekit.backends import RandomForest, as_data

    xs = adult.select(["age", "hours-per-week", "education-num"])
    y = (adult["salary"] == ">=50k").to_numpy().astype(float)
    rf = RandomForest("regression", n_estimators=5, seed=0).fit(as_data(xs, y=y))
    folder = save_pickle(tmp_path / "rf_model", rf)
    assert folder.is_dir()
    back = load_pickle(folder)
    assert type(back).__name__ == "RandomForest"
    assert np.array_equal(back.predict(as_data(xs)), rf.predict(as_data(xs)))
    learner_folder = save_pickle(tmp_path / "learn_model", adult_learner)
    row = adult.row(3, named=True)
    assert load_pickle(learner_folder).predict(row)[0] == adult_learner.predict(row)[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is a folder; give the file save_pickle wrote"):
        load_pickle(tmp_path / "empty")


# ------------------------------------------------------------------ a learner saved under a relative name
def test_save_pickle_of_a_learner_writes_a_relative_name_in_the_working_folder(adult, adult_learner, tmp_path,
                                                                               monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert adult_learner.path != work
    written = save_pickle("learn.pkl", adult_learner)
    assert written.resolve() == work / "learn.pkl" and not (adult_learner.path / "learn.pkl").exists()
    row = adult.row(5, named=True)
    assert load_pickle("learn.pkl").predict(row)[0] == adult_learner.predict(row)[0]
    # learn.export keeps its own rule: a relative name is under learn.path
    assert adult_learner.export("own.pipekit") == adult_learner.path / "own.pipekit"


def test_pipekit_save_of_a_vision_learner_writes_a_relative_name_in_the_working_folder(mnist_dls, tmp_path,
                                                                                       monkeypatch):
    from pipekit.data import get_image_files
    from pipekit.vision import vision_learner

    data, work = tmp_path / "data", tmp_path / "work"  # learn.path stands for the data set's folder
    work.mkdir()
    monkeypatch.chdir(work)
    learn = vision_learner(mnist_dls, "simple_cnn", path=data)
    written = pipekit.save(learn, "m.pipekit")
    assert written == work / "m.pipekit" and written.is_file() and not (data / "m.pipekit").exists()
    image = get_image_files(D.path("mnist_tiny") / "valid" / "7")[0]
    assert pipekit.load("m.pipekit").predict(image)[0] == learn.predict(image)[0]
    assert pipekit.save(learn, "folder_model") == work / "folder_model" and is_export_folder(work / "folder_model")


# ------------------------------------------------------------------ what pipekit.save cannot write
def test_pipekit_save_of_a_processed_table_names_what_writes_it(adult, tmp_path):
    to = Tabular(adult, cat_names=CATS, cont_names=CONTS, y_names="salary")
    with pytest.raises(ExportError, match=r"a Tabular is not a pipekit component or learner; .*to\.save\(path\) "
                                          r".*\.parquet.*save_pickle\(path, to\)"):
        pipekit.save(to, tmp_path / "to.pipekit")
    # both ways the message names give the table back
    for back in (Tabular.load(to.save(tmp_path / "to.parquet")), load_pickle(save_pickle(tmp_path / "to.pkl", to))):
        assert back.xs.equals(to.xs) and back.y.equals(to.y)


@pytest.mark.parametrize("make, var, kind", [
    (lambda df: df.to_pandas(), "df", "pandas.DataFrame"),
    (lambda df: df, "df", "polars.DataFrame"),
    (lambda df: df["age"].to_pandas(), "s", "pandas.Series"),
    (lambda df: df["age"], "s", "polars.Series"),
    (lambda df: df.select(CONTS).to_numpy(), "arr", "NumPy array"),
])
def test_pipekit_save_of_a_frame_series_or_array_names_save_pickle(adult, tmp_path, make, var, kind):
    obj = make(adult.head(50))
    with pytest.raises(ExportError, match=rf"is not a pipekit component or learner; write it with "
                                          rf"pipekit\.tabular\.save_pickle\(path, {var}\) .*reads back as a {kind}$"):
        pipekit.save(obj, tmp_path / "xs.pipekit")
    back = load_pickle(save_pickle(tmp_path / "xs.pkl", obj))
    assert type(back) is type(obj)
    assert np.array_equal(back, obj) if isinstance(obj, np.ndarray) else back.equals(obj)


# ------------------------------------------------------------------ a pickled .pth as pretrained=
def test_a_pickled_pth_as_pretrained_is_refused_without_torchs_unsafe_advice(mnist_dls, tmp_path):
    from pipekit.vision import vision_learner

    class Runs:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "x": Runs()}, evil)
    with pytest.raises(DataError) as e:
        vision_learner(mnist_dls, "simple_cnn", pretrained=evil, path=tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"pretrained={str(evil)!r} cannot be read as a weights file without running code")
    assert "weights_only" not in msg and "Re-running" not in msg and "posix.system" in msg
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert not (tmp_path / "ran").exists()
    # a .pth holding only a state dict is still read
    learn = vision_learner(mnist_dls, "simple_cnn", path=tmp_path)
    torch.save(learn.model.state_dict(), tmp_path / "plain.pth")
    tuned = vision_learner(mnist_dls, "simple_cnn", pretrained=tmp_path / "plain.pth", path=tmp_path)
    for a, b in zip(learn.model[0].state_dict().values(), tuned.model[0].state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
