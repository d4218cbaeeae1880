"""Where saved models go and how they are read back: an export written as a folder (a name without an extension) is
read by ``pipekit predict`` and ``load_pickle`` as by ``pipekit.load``; ``pipekit.save`` and ``save_pickle`` put a
relative name under the working folder for a learner too, where ``pipekit.load`` and ``load_pickle`` look; what
``pipekit.save`` cannot write (a processed table, frames, arrays) is refused naming what writes it; and a pickled
``.pth`` given as ``pretrained=`` is refused in pipekit's words, without torch's advice to unpickle it."""
from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.cli import main
from pipekit.core import DataError, ExportError, ParameterError
from pipekit.core import archive
from pipekit.core.archive import REPLACING_MARKER, is_export_folder, write_archive
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
    (tmp_path / "other" / "record.json").write_text("{}")  # neither a manifest.json nor the marker
    with pytest.raises(SystemExit) as e:
        main(["predict", "other", "rows.csv"])
    assert "'other' is a folder, not a model file" in str(e.value.code)
    (tmp_path / "other" / "manifest.json").write_text('{"name": "a web app"}')  # another program's manifest
    with pytest.raises(SystemExit) as e:  # load says what the folder holds
        main(["predict", "other", "rows.csv"])
    assert str(e.value.code) == "pipekit predict: other: manifest.json does not describe a pipekit file"


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
    assert written == Path("m.pipekit") and (work / "m.pipekit").is_file() and not (data / "m.pipekit").exists()
    image = get_image_files(D.path("mnist_tiny") / "valid" / "7")[0]
    assert pipekit.load("m.pipekit").predict(image)[0] == learn.predict(image)[0]
    assert pipekit.save(learn, "folder_model") == Path("folder_model") and is_export_folder(work / "folder_model")


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



def test_a_pickled_object_as_pretrained_names_its_class(tmp_path, monkeypatch):
    """fastai's export.pkl renamed .pth and torch.save(model) hold pickled objects: the refusal names their class
    (torch's reason) and leaves out torch's advice to unpickle them."""
    from pipekit.vision import load_body_weights

    class Learner:  # fastai.learner.Learner, pickled without fastai installed: a module no one can import here
        pass

    Learner.__module__, Learner.__qualname__ = "fastai.learner", "Learner"
    fastai, learner = types.ModuleType("fastai"), types.ModuleType("fastai.learner")
    learner.Learner = Learner
    export = tmp_path / "export.pth"
    with monkeypatch.context() as m:  # only while pickling: the module is gone when the file is read
        m.setitem(sys.modules, "fastai", fastai)
        m.setitem(sys.modules, "fastai.learner", learner)
        torch.save(Learner(), export)
    assert "fastai.learner" not in sys.modules and b"fastai.learner" in export.read_bytes()
    whole = tmp_path / "whole_model.pth"
    torch.save(torch.nn.Linear(2, 2), whole)
    for path, cls in ((export, "fastai.learner.Learner"), (whole, "torch.nn.modules.linear.Linear")):
        with pytest.raises(DataError) as e:
            load_body_weights(torch.nn.Sequential(), path)
        msg = str(e.value)
        assert msg.startswith(f"pretrained={str(path)!r} cannot be read as a weights file without running code")
        assert f"it holds a pickled {cls}, which only running the file's code could rebuild" in msg
        assert not any(word in msg for word in ("weights_only", "safe_globals", "trust", "\x1b"))


def test_a_damaged_or_foreign_pth_as_pretrained_is_called_damaged_not_unsafe(tmp_path):
    from pipekit.vision import load_body_weights

    torch.save({"w": torch.zeros(1000)}, tmp_path / "whole.pth")
    files = {"empty.pth": b"", "cut.pth": (tmp_path / "whole.pth").read_bytes()[:500],
             "text.pth": b"not a torch file at all", "plain_pickle.pth": pickle.dumps({"w": [1, 2]}, protocol=2)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError) as e:
            load_body_weights(torch.nn.Sequential(), tmp_path / name)
        msg = str(e.value)
        assert msg.startswith(f"pretrained={str(tmp_path / name)!r} cannot be read as a weights file (")
        assert "it is empty, cut short, damaged or not a torch weights file" in msg, msg
        assert "without running code" not in msg and "weights_only" not in msg
    with pytest.raises(DataError, match=r"\(EOFError\): it is empty"):
        load_body_weights(torch.nn.Sequential(), tmp_path / "empty.pth")
    with pytest.raises(DataError, match=r"\(RuntimeError: PytorchStreamReader failed reading zip archive: failed "
                                        r"finding central directory\): it is empty"):
        load_body_weights(torch.nn.Sequential(), tmp_path / "cut.pth")


# ------------------------------------------------------------------ an export written as a folder as pretrained=
def test_an_export_written_as_a_folder_is_read_as_pretrained_weights(mnist_dls, tmp_path):
    from pipekit.vision import load_body_weights, vision_learner

    learn = vision_learner(mnist_dls, "simple_cnn", path=tmp_path)
    folder = learn.export(tmp_path / "mnist_model")  # a name without an extension: a folder
    assert folder.is_dir()
    tuned = vision_learner(mnist_dls, "simple_cnn", pretrained=folder, path=tmp_path)
    for a, b in zip(learn.model[0].state_dict().values(), tuned.model[0].state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    body = vision_learner(mnist_dls, "simple_cnn", path=tmp_path).model[0]
    assert load_body_weights(body, folder) == len(body.state_dict())
    assert all(torch.equal(a.cpu(), b.cpu()) for a, b in zip(learn.model[0].state_dict().values(),
                                                              body.state_dict().values()))
    # a folder holding no export is refused as such; one whose export was stopped part-way says so
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="is a folder holding no pipekit export; give a .safetensors file"):
        load_body_weights(body, tmp_path / "plain")
    os.replace(folder / "manifest.json", folder / REPLACING_MARKER)
    with pytest.raises(ExportError, match="an export into this folder was stopped before it finished"):
        load_body_weights(body, folder)


# ------------------------------------------------------------------ one way to recognise an export folder
def _predict_says(folder) -> str:
    with pytest.raises(SystemExit) as e:
        main(["predict", str(folder), "rows.csv"])
    return str(e.value.code)


def test_export_folders_are_recognised_one_way_by_predict_load_pickle_load_and_export(tmp_path):
    good = write_archive(tmp_path / "good", "component", {"n": 1})
    manifest = (good / "manifest.json").read_bytes()
    outside = tmp_path / "outside.json"
    outside.write_bytes(manifest)
    assert archive.export_folder_kind(good) == "ours" and archive.export_folder_kind(tmp_path / "absent") == "none"

    def folder(name, **files):
        d = tmp_path / name
        d.mkdir()
        for f, make in files.items():
            make(d / {"marker": REPLACING_MARKER, "manifest": "manifest.json"}.get(f, f"{f}.json"))
        return d

    link = folder("manifest_link", manifest=lambda f: f.symlink_to(outside))  # an export checked out as links
    broken = folder("manifest_broken_link", manifest=lambda f: f.symlink_to(tmp_path / "gone.json"))
    fifo = folder("manifest_fifo", manifest=os.mkfifo)  # never opened: reading one would wait for a writer
    marker_link = folder("marker_link", marker=lambda f: f.symlink_to(outside))
    beside = folder("foreign_beside_marker", marker=lambda f: f.write_bytes(manifest),
                    manifest=lambda f: f.write_text('{"name": "a web app"}'))
    stopped = folder("stopped", marker=lambda f: f.write_bytes(manifest))
    link_msg = "'manifest.json' is a symbolic link; an export folder holds its files themselves (copy the file"
    cases = [(link, "foreign", link_msg), (broken, "foreign", link_msg),
             (fifo, "foreign", "'manifest.json' is not a regular file"),
             (marker_link, "foreign", f"has no manifest.json; it is not a pipekit file (its {REPLACING_MARKER!r} is "
                                      "a symbolic link"),
             (beside, "foreign", "manifest.json does not describe a pipekit file"),
             (stopped, "ours", "an export into this folder was stopped before it finished")]
    for d, kind, said in cases:
        # every one is handed to load (is_export_folder), which says what is wrong with a foreign one
        assert archive.export_folder_kind(d) == kind and is_export_folder(d), d.name
        with pytest.raises(ExportError) as e:
            pipekit.load(d)
        assert said in str(e.value), (d.name, str(e.value))
        with pytest.raises(ExportError) as e:
            load_pickle(d)
        assert said in str(e.value), d.name
        assert said in _predict_says(d), d.name
    # exporting into one: a foreign manifest.json is never overwritten; a stopped export is replaced
    for d in (link, beside):
        with pytest.raises(ExportError, match="is not a pipekit export's manifest, so it belongs to another program"):
            write_archive(d, "component", {"n": 2})
    assert outside.read_bytes() == manifest and (beside / "manifest.json").read_text() == '{"name": "a web app"}'
    write_archive(stopped, "component", {"n": 2})
    assert archive.export_folder_kind(stopped) == "ours" and not (stopped / REPLACING_MARKER).exists()
    # a folder holding neither is no model file
    neither = folder("neither", record=lambda f: f.write_text("{}"))
    assert archive.export_folder_kind(neither) == "none" and not is_export_folder(neither)
    assert "is a folder, not a model file" in _predict_says(neither)
    with pytest.raises(FileNotFoundError, match="is a folder; give the file save_pickle wrote"):
        load_pickle(neither)


# ------------------------------------------------------------------ save_pickle's advice only where it holds
@pytest.mark.parametrize("obj", [
    np.array([{"a": 1}], dtype=object),
    np.ma.masked_array([1.0, 2.0], mask=[0, 1]),
    np.array(["2024-01-01"], dtype="datetime64[D]"),
    np.matrix([[1, 2]]),
    pd.DataFrame({"c": pd.Categorical([1, 2, 1])}),
], ids=["object", "masked", "datetime64", "matrix", "number_categories"])
def test_pipekit_save_gives_save_pickles_own_fix_for_what_save_pickle_refuses(obj, tmp_path):
    with pytest.raises(ParameterError) as refused:
        save_pickle(tmp_path / "xs.pkl", obj)
    assert not (tmp_path / "xs.pkl").exists()
    with pytest.raises(ExportError) as e:
        pipekit.save(obj, tmp_path / "xs.pipekit")
    msg = str(e.value)
    fix = str(refused.value).removeprefix("save_pickle: ")
    assert msg.endswith(f"is not a pipekit component or learner; nor can pipekit.tabular.save_pickle write it: {fix}")
    assert "write it with pipekit.tabular.save_pickle" not in msg


# ------------------------------------------------------------------ the path pipekit.save returns
def test_pipekit_save_returns_the_path_as_given_for_a_learner_and_a_component(adult, adult_learner, tmp_path,
                                                                              monkeypatch):
    from pipekit.data import Categorize

    monkeypatch.chdir(tmp_path)
    c = Categorize()
    c.setup(pl.Series(["a", "b"]))
    assert pipekit.save(c, "c.pipekit") == Path("c.pipekit")
    written = pipekit.save(adult_learner, "l.pipekit")
    assert written == Path("l.pipekit") and not written.is_absolute() and (tmp_path / "l.pipekit").is_file()
    row = adult.row(7, named=True)
    assert pipekit.load(written).predict(row)[0] == adult_learner.predict(row)[0]
    assert pipekit.save(adult_learner, tmp_path / "abs.pipekit") == tmp_path / "abs.pipekit"


def test_a_folder_without_manifest_reads_its_marker_once_and_says_why(tmp_path, monkeypatch):
    manifest = (write_archive(tmp_path / "good", "component", {"n": 1}) / "manifest.json").read_bytes()
    read = []
    real = archive.read_file

    def counted(path, where, *args, **kwargs):
        read.append(Path(path).name)
        return real(path, where, *args, **kwargs)

    monkeypatch.setattr(archive, "read_file", counted)
    for name, make, said in [
        ("marker_link", lambda f: f.symlink_to(tmp_path / "good" / "manifest.json"),
         f"(its {REPLACING_MARKER!r} is a symbolic link"),
        ("marker_not_json", lambda f: f.write_text("not json"),
         f"(its {REPLACING_MARKER!r} is not a pipekit export's manifest)"),
        ("stopped", lambda f: f.write_bytes(manifest), "an export into this folder was stopped before it finished")]:
        d = tmp_path / name
        d.mkdir()
        make(d / REPLACING_MARKER)
        read.clear()
        with pytest.raises(ExportError) as e:
            pipekit.load(d)
        assert said in str(e.value), (name, str(e.value))
        assert read.count(REPLACING_MARKER) == 1, (name, read)


# ------------------------------------------------------------------ save_pickle_hint: what save_pickle says, cheaply
def test_save_pickle_hint_says_what_save_pickle_does_checking_a_large_frames_first_rows(adult, tmp_path, monkeypatch):
    from pipekit.tabular import saving

    to = Tabular(adult, cat_names=CATS, cont_names=CONTS, y_names="salary")
    for obj in (to, adult, adult.to_pandas(), adult["age"], adult["age"].to_pandas(), adult.select(CONTS).to_numpy()):
        hint = saving.save_pickle_hint(obj)
        assert hint is not None and "pipekit.tabular.save_pickle(path, " in hint and "nor can" not in hint, hint
        save_pickle(tmp_path / "ok.pkl", obj)  # what it says save_pickle writes, it writes
    assert saving.save_pickle_hint({"n": 2}) is None and saving.save_pickle_hint(pipekit) is None
    # a large frame: the message of pipekit.save converts its first rows only, and says save_pickle's own fix
    big = pl.concat([pl.read_csv(D.path("adult_sample") / "adult.csv")] * 4).to_pandas()
    big["education"] = big["education"].astype("category").cat.rename_categories(
        range(big["education"].nunique()))  # categories of numbers: refused by save_pickle
    rows = []
    real = saving._frame_table

    def seen(obj, kind):
        rows.append(len(obj))
        return real(obj, kind)

    monkeypatch.setattr(saving, "_frame_table", seen)
    with pytest.raises(ExportError) as e:
        pipekit.save(big, tmp_path / "big.pipekit")
    assert rows and max(rows) <= 1000 < len(big), rows
    with pytest.raises(ParameterError) as refused:
        save_pickle(tmp_path / "big.pkl", big)
    assert str(e.value).endswith(f"; nor can pipekit.tabular.save_pickle write it: "
                                 f"{str(refused.value).removeprefix('save_pickle: ')}")
    assert rows[-1] == len(big) and not (tmp_path / "big.pkl").exists()  # save_pickle itself checks every row
