"""Where pipekit writes what a user names: a data set's name is one plain folder name (nothing installed outside the
data folder, no folder of the user's moved aside), a folder export never overwrites a user's own files, a checkpoint's
relative name is under learn.path/model_dir as in fastai (learn.load finds what learn.save wrote), and a figure's
path= is the file written (``.png`` added when the name has no image suffix; a folder refused)."""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.core.errors import ExportError, ParameterError
from pipekit.data.external import REGISTRY, URLs, Checksum, DatasetInfo, file_digests, register_dataset
from pipekit.data.plotting import get_pyplot, savefig_or_show

ADULT = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent")) / "adult_sample" / "adult.csv"


@pytest.fixture(scope="module")
def adult():
    if not ADULT.is_file():
        pytest.skip("needs $PIPEKIT_DATA")
    return pl.read_csv(ADULT).head(500)


@pytest.fixture(scope="module")
def learn(adult, tmp_path_factory):
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    dls = TabularDataLoaders.from_df(adult, y_names="salary", cat_names=["workclass"], cont_names=["age"], bs=64, seed=0)
    return tabular_learner(dls, layers=[8], path=tmp_path_factory.mktemp("proj"))


def _archive(tmp_path: Path) -> tuple[str, Checksum]:
    """A data set's archive made of adult.csv's first rows, its address and its checksum."""
    rows = b"".join(ADULT.read_bytes().splitlines(keepends=True)[:20])
    with tarfile.open(tmp_path / "adult_rows.tgz", "w:gz") as tar:
        member = tarfile.TarInfo("adult_rows/adult.csv")
        member.size = len(rows)
        tar.addfile(member, io.BytesIO(rows))
    size, _, sha = file_digests(tmp_path / "adult_rows.tgz")
    return (tmp_path / "adult_rows.tgz").as_uri(), Checksum(size, sha256=sha)


# ------------------------------------------------------------------------------------------- data set names
@pytest.mark.parametrize("name", ["../escaped", "/ABSOLUTE/my_project", "", ".", "..", "rows/adult", "adult/"])
def test_a_data_set_name_that_is_not_one_plain_folder_name_is_refused_before_anything_is_touched(
        adult, tmp_path, monkeypatch, name):
    url, checksum = _archive(tmp_path)
    cache = tmp_path / "cache"
    (cache / "data" / "other_set").mkdir(parents=True)
    (cache / "data" / "other_set" / "adult.csv").write_bytes(ADULT.read_bytes()[:200])
    victim = tmp_path / "my_project"
    victim.mkdir()
    (victim / "work.txt").write_text("my work")
    name = name.replace("/ABSOLUTE/my_project", str(victim))
    monkeypatch.setenv("PIPEKIT_CACHE", str(cache))
    before = dict(REGISTRY)
    with pytest.raises(ParameterError, match=rf"the data set name {name!r} is not one plain folder name .*must not be "
                                             r"'', '\.' or '\.\.', nor hold a '/' or be an absolute path"):
        register_dataset(DatasetInfo(name, (url,), ("adult.csv",), checksums={url: checksum}))
    assert REGISTRY == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adult_rows.tgz", "cache", "my_project"]
    assert sorted(p.name for p in (cache / "data").iterdir()) == ["other_set"]
    assert [p.name for p in victim.iterdir()] == ["work.txt"]


def test_a_plain_data_set_name_is_fetched_into_the_data_folder_and_urls_path_uses_the_same_rule(
        adult, tmp_path, monkeypatch):
    url, checksum = _archive(tmp_path)
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PIPEKIT_DATA", raising=False)
    monkeypatch.delitem(REGISTRY, "adult_rows", raising=False)
    register_dataset(DatasetInfo("adult_rows", (url,), ("adult.csv",), checksums={url: checksum}))
    try:
        folder = D.path("adult_rows")
        assert folder == tmp_path / "cache" / "data" / "adult_rows"
        assert (folder / "adult.csv").read_bytes().startswith(ADULT.read_bytes()[:100])
    finally:
        del REGISTRY["adult_rows"]
    for url in ("..", "", "https://example.com/files/.."):
        with pytest.raises(ValueError, match="is not one plain folder name"):
            URLs.path(url)


# ------------------------------------------------------------------------------- a folder export's own files
def test_a_folder_export_refuses_to_overwrite_a_users_own_files_and_touches_nothing(learn, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    np.savez(results / "arrays.npz", my_experiment=np.arange(5))
    (results / "record.json").write_text(json.dumps({"my": "lab notebook"}))
    (results / "weights.safetensors").write_bytes(b"my own fine-tuned weights")
    (results / "notes.txt").write_text("keep me")
    before = {p.name: p.read_bytes() for p in results.iterdir()}
    with pytest.raises(ExportError, match=rf"cannot export to {results}: it holds no pipekit export, yet it holds "
                                          r"\['record.json', 'weights.safetensors'\], which the export would "
                                          rf"overwrite; export into another folder .* or to a file \(e.g. "
                                          rf"{results}.pipekit\)"):
        learn.export(results)
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before
    # the file name the message suggests is written; a folder holding only files the export does not write is used
    assert learn.export(tmp_path / "results.pipekit").is_file()
    (results / "record.json").unlink()
    (results / "weights.safetensors").unlink()
    learn.export(results)
    assert np.array_equal(np.load(results / "arrays.npz")["my_experiment"], np.arange(5))
    assert (results / "notes.txt").read_text() == "keep me"
    learn.export(results)  # a previous pipekit export is replaced


def test_an_interrupted_first_export_into_a_users_folder_can_be_run_again(learn, tmp_path, monkeypatch):
    import pipekit.core.archive as archive

    results = tmp_path / "results"
    results.mkdir()
    (results / "notes.txt").write_text("keep me")
    write = archive.atomic_write_bytes

    def interrupted(dest, data, *a, **k):
        if Path(dest).name == "weights.safetensors":
            raise KeyboardInterrupt("Ctrl-C while writing weights")
        return write(dest, data, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(archive, "atomic_write_bytes", interrupted)
        with pytest.raises(KeyboardInterrupt):
            learn.export(results)
    assert [p.name for p in results.iterdir()] == ["notes.txt"]  # the record it wrote is gone with the export
    learn.export(results)
    assert sorted(p.name for p in results.iterdir()) == ["manifest.json", "notes.txt", "record.json",
                                                         "weights.safetensors"]


# -------------------------------------------------------------------------------------- checkpoint names
def test_a_relative_checkpoint_name_is_under_learn_path_model_dir_and_loads_back(learn, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    models = learn.path / learn.model_dir
    for name, where in [("stage1", models / "stage1.pipekit"), ("stage1.pipekit", models / "stage1.pipekit"),
                        ("runs/stage1", models / "runs" / "stage1.pipekit"),
                        (Path("runs") / "stage2.pipekit", models / "runs" / "stage2.pipekit"),
                        ("stage1.v2", models / "stage1.v2.pipekit"),
                        (tmp_path / "elsewhere" / "ck", tmp_path / "elsewhere" / "ck.pipekit")]:
        assert learn.save(name) == where and where.is_file()
        assert learn.load(name) is learn
    assert learn.export("runs/m.pipekit") == learn.path / "runs" / "m.pipekit"  # an export: under learn.path
    # nothing under the working folder but the absolute name's file
    assert not (tmp_path / "runs").exists() and list(tmp_path.glob("stage*")) == []


@pytest.fixture
def here(adult, tmp_path, monkeypatch):
    """A learner given no path=: its learn.path is the relative working folder, '.' (tmp_path here)."""
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPEKIT_QUIET", "1")
    dls = TabularDataLoaders.from_df(adult, y_names="salary", cat_names=["workclass"], cont_names=["age"], bs=64, seed=0)
    learn = tabular_learner(dls, layers=[8])
    assert learn.path == Path(".")
    return learn


def test_with_a_relative_learn_path_load_reads_the_path_save_returns(here, tmp_path):
    for name, where in [("stage1", tmp_path / "models" / "stage1.pipekit"),
                        ("runs/x.pipekit", tmp_path / "models" / "runs" / "x.pipekit")]:
        saved = here.save(name)
        assert saved == where and saved.is_absolute() and saved.is_file()
        assert here.load(saved) is here and here.load(str(saved)) is here  # not models/models/...
    assert not (tmp_path / "models" / "models").exists()


def test_with_a_relative_learn_path_save_model_callback_records_paths_load_reads(here, tmp_path):
    from pipekit.learn import SaveModelCallback

    best, every = SaveModelCallback(), SaveModelCallback(fname="m.v2", every_epoch=True)
    here.fit(2, 1e-2, cbs=[best, every])
    models = tmp_path / "models"
    assert best.saved_[-1] == models / "model.pipekit"
    assert every.saved_ == (models / "m.v2_0.pipekit", models / "m.v2_1.pipekit")  # the dot keeps .pipekit
    for saved in (*best.saved_, *every.saved_):
        assert saved.is_file() and here.load(saved, with_opt=False) is here


@pytest.mark.parametrize("name", ["stage1.v2", f"lr{1e-3}", "resnet34.stage1", "runs/stage1.v2"])
def test_a_checkpoint_name_with_a_dot_still_gets_pipekit_appended(here, tmp_path, name):
    saved = here.save(name)
    assert saved == tmp_path / "models" / f"{name}.pipekit" and saved.is_file()
    assert here.load(name) is here and here.load(saved) is here


def test_load_names_a_checkpoint_where_a_relative_name_with_folders_was_once_read_from(here, tmp_path):
    import shutil

    (tmp_path / "runs").mkdir()
    old = tmp_path / "runs" / "stage1.pipekit"  # where learn.save("runs/stage1") wrote, under the working folder
    shutil.move(here.save("stage1"), old)
    for name in ("runs/stage1", "runs/stage1.pipekit"):
        with pytest.raises(FileNotFoundError) as e:
            here.load(name)  # no silent fallback: the message names the file and how to load it
        msg = str(e.value)
        assert f"no checkpoint at {tmp_path / 'models' / 'runs' / 'stage1.pipekit'}" in msg
        assert f"A checkpoint is at {old}" in msg and f"learn.load({str(old)!r})" in msg
        assert "saved with learn.save" not in msg
    assert here.load(old) is here
    with pytest.raises(FileNotFoundError) as e:  # nothing at the working folder's path: nothing named
        here.load("stage2")
    assert "A checkpoint is at" not in str(e.value) and "saved with learn.save" not in str(e.value)


def test_an_export_killed_before_its_manifest_is_written_can_be_run_again(learn, tmp_path, monkeypatch):
    import shutil

    import pipekit
    import pipekit.core.archive as archive

    results, killed = tmp_path / "results", tmp_path / "killed"
    learn.export(results)
    write = archive.atomic_write_bytes

    def snapshot(dest, data, *a, **k):  # what a process killed (SIGKILL, out of memory) just then leaves
        if Path(dest).name == "manifest.json":
            shutil.copytree(results, killed)
        return write(dest, data, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(archive, "atomic_write_bytes", snapshot)
        learn.export(results)  # replaces the previous export
    assert sorted(p.name for p in results.iterdir()) == ["manifest.json", "record.json", "weights.safetensors"]
    left = sorted(p.name for p in killed.iterdir())
    assert "manifest.json" not in left and {"record.json", "weights.safetensors"} <= set(left)
    with pytest.raises(ExportError, match="stopped before it finished.*export the model into it again"):
        pipekit.load(killed)  # no manifest: load refuses the folder, and says how it came to be
    assert learn.export(killed) == killed  # the files left are recognised as pipekit's and replaced
    assert sorted(p.name for p in killed.iterdir()) == ["manifest.json", "record.json", "weights.safetensors"]
    loaded = pipekit.load(killed)
    assert type(loaded) is type(learn) and loaded.dls.vocab == learn.dls.vocab
    # a user's folder with their own record.json (and no pipekit marker) is still refused, untouched
    own = tmp_path / "own"
    own.mkdir()
    (own / "record.json").write_text(json.dumps({"my": "lab notebook"}))
    (own / archive.REPLACING_MARKER).write_text("not a pipekit manifest")
    with pytest.raises(ExportError, match="it holds no pipekit export, yet it holds"):
        learn.export(own)
    assert json.loads((own / "record.json").read_text()) == {"my": "lab notebook"}


def _tiny_language_model(n_texts, **kwargs):
    """A one-layer language model learner on the first ``n_texts`` of imdb_sample (skipped without the data)."""
    from pipekit.data import ColReader, DataBlock, RandomSplitter
    from pipekit.text import AWD_LSTM, TextBlock, language_model_learner

    imdb = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent")) / "imdb_sample" / "texts.csv"
    if not imdb.is_file():
        pytest.skip("needs $PIPEKIT_DATA")
    texts = pl.read_csv(imdb).head(n_texts)
    db = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, seq_len=24, cache_dir=False),
                   get_x=ColReader("text"), splitter=RandomSplitter(0.2, seed=0))
    return language_model_learner(db.dataloaders(texts, bs=8, seed=0, num_workers=0), AWD_LSTM,
                                  config=dict(emb_sz=8, n_hid=16, n_layers=1), **kwargs)


def test_save_encoder_and_load_encoder_use_learn_saves_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lm = _tiny_language_model(60)
    models = tmp_path / "models"
    for name, where in [("enc", models / "enc.pipekit"), ("enc.pipekit", models / "enc.pipekit"),
                        ("runs/enc", models / "runs" / "enc.pipekit"), ("enc.v2", models / "enc.v2.pipekit")]:
        saved = lm.save_encoder(name)
        assert saved == where and saved.is_file(), name  # where learn.save(name) writes, absolute
        assert lm.load_encoder(name) is lm and lm.load_encoder(saved) is lm
    assert lm.save("enc").parent == lm.save_encoder("enc").parent
    assert not (tmp_path / "runs").exists() and not (tmp_path / "enc.pipekit").exists()


def test_load_encoder_never_reads_a_name_relative_to_the_working_folder_and_names_such_a_file(tmp_path, monkeypatch):
    import shutil

    from pipekit.learn.export import checkpoint_path

    monkeypatch.chdir(tmp_path)
    lm = _tiny_language_model(40, path=tmp_path / "lm")
    saved = lm.save_encoder("enc")
    assert saved == tmp_path / "lm" / "models" / "enc.pipekit" and lm.load_encoder(saved) is lm  # round trip
    kept = shutil.move(saved, tmp_path / "kept.pipekit")  # nothing left under lm.path / "models"
    runs = tmp_path / "runs"
    runs.mkdir()
    for name, old in [("enc", tmp_path / "enc.pipekit"), ("enc.pipekit", tmp_path / "enc.pipekit"),
                      ("runs/enc", runs / "enc.pipekit"), (Path("runs/enc.pipekit"), runs / "enc.pipekit")]:
        shutil.copy(kept, old)  # a file where a name relative to the working folder once found it
        want = checkpoint_path(lm, name).absolute()  # where learn.load(name) reads, under lm.path / "models"
        with pytest.raises(FileNotFoundError) as e:
            lm.load_encoder(name)  # no silent fallback: the message names the file and how to load it
        msg = str(e.value)
        assert f"no encoder file {want}" in msg, name
        assert f"An encoder file is at {old}" in msg and f"learn.load_encoder({str(old)!r})" in msg, name
        assert lm.load_encoder(old) is lm
        old.unlink()
    with pytest.raises(FileNotFoundError) as e:  # nothing at the working folder's path: nothing named
        lm.load_encoder("runs/enc")
    assert "An encoder file is at" not in str(e.value)


# ---------------------------------------------------------------------------------------------- figures
def _figure(adult):
    fig, ax = get_pyplot().subplots()
    ax.hist(adult["age"].to_numpy(), bins=20)
    return fig


def test_a_figure_path_is_the_file_written(adult, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for given, written in [("fig", "fig.png"), ("report/run1", "report/run1.png"), ("loss.v2", "loss.v2.png"),
                           ("ages.svg", "ages.svg"), ("ages.PNG", "ages.PNG")]:
        out = savefig_or_show(_figure(adult), given)
        assert out == Path(written) and out.is_file(), given
    assert not Path("fig").exists() and not Path("loss.v2").exists()
    assert Path("ages.svg").read_bytes().lstrip().startswith(b"<?xml")


def test_an_existing_folder_as_a_figure_path_is_refused(adult, tmp_path):
    (tmp_path / "plots_here").mkdir()
    with pytest.raises(ParameterError, match=rf"the figure path '{tmp_path / 'plots_here'}' is a folder; give a file "
                                             rf"name for the figure, e.g. {tmp_path / 'plots_here' / 'figure.png'}"):
        savefig_or_show(_figure(adult), tmp_path / "plots_here")
    assert not (tmp_path / "plots_here.png").exists() and list((tmp_path / "plots_here").iterdir()) == []
