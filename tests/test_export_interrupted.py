"""An export interrupted part-way (Ctrl-C, an error) leaves no temporary file, and never a mix of two exports: a zip
keeps the previous export whole, a folder is left without manifest.json, which load refuses; a folder export never
touches files pipekit does not write; the augmentation pool follows torch's thread count; fit refuses to run with
gradients off."""
from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path

import pytest
import torch

import numpy as np
import polars as pl

import pipekit
import pipekit.core.archive as archive
from pipekit.backends import RandomForest, as_data
from pipekit.core.errors import ExportError, ParameterError
from pipekit.learn import Learner, accuracy, load_learner, simple_cnn
from pipekit.vision import augment


@pytest.fixture(scope="module")
def learn(mnist_dls, one_torch_thread):
    pipekit.set_seed(0)
    learn = Learner(mnist_dls, simple_cnn(n_in=1, n_out=2), metrics=accuracy)
    learn.fit(1, 1e-2)
    return learn


def preds(path: Path, learn: Learner) -> torch.Tensor:
    return load_learner(path).get_preds(dl=learn.dls.valid)[0]


def changed(learn: Learner) -> None:
    """Move every weight and the default learning rate, so that an export of the learner now differs from one written
    before in its weights and in its record."""
    learn.lr = learn.lr * 2
    with torch.no_grad():
        for p in learn.model.parameters():
            p.add_(0.05)


def contents(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir()} if path.is_dir() else {path.name: path.read_bytes()}


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def interrupt_weights(monkeypatch) -> None:
    """Ctrl-C as the weights file is written, in a folder (half-way through writing its temporary file) or in a zip."""
    write_file, write_all, writestr = archive.atomic_write_bytes, archive._write_all, zipfile.ZipFile.writestr
    writing = {"weights": False}

    def wf(dest, data, *a, **k):
        writing["weights"] = Path(dest).name == "weights.safetensors"
        return write_file(dest, data, *a, **k)

    def wa(f, data):
        if writing["weights"]:
            write_all(f, bytes(data)[:8])
            raise KeyboardInterrupt("Ctrl-C while writing weights")
        return write_all(f, data)

    def ws(self, name, *a, **k):
        if str(getattr(name, "filename", name)) == "weights.safetensors":
            raise KeyboardInterrupt("Ctrl-C while writing weights")
        return writestr(self, name, *a, **k)

    monkeypatch.setattr(archive, "atomic_write_bytes", wf)
    monkeypatch.setattr(archive, "_write_all", wa)
    monkeypatch.setattr(zipfile.ZipFile, "writestr", ws)


def test_an_interrupted_zip_export_leaves_the_old_one_whole_and_no_temporary_file(learn, tmp_path, monkeypatch):
    target = tmp_path / "model.pipekit"
    learn.export(target)
    old, old_lr, files = preds(target, learn), learn.lr, contents(target)
    changed(learn)
    new = learn.get_preds(dl=learn.dls.valid)[0]
    assert not torch.allclose(old, new)
    with monkeypatch.context() as m:
        interrupt_weights(m)
        with pytest.raises(KeyboardInterrupt):
            learn.export(target)
        with pytest.raises(KeyboardInterrupt):
            pipekit.save(learn, target)
    assert contents(target) == files  # the old export, whole: not its weights under the new record
    assert torch.equal(preds(target, learn), old) and load_learner(target).lr == old_lr
    assert hidden(tmp_path) == []
    learn.export(target)  # uninterrupted, it replaces the old export
    assert torch.allclose(preds(target, learn), new, atol=1e-6) and load_learner(target).lr == learn.lr != old_lr
    assert hidden(tmp_path) == []


def test_an_interrupted_folder_export_is_refused_by_load_never_a_mix(learn, tmp_path, monkeypatch):
    target = tmp_path / "model"
    learn.export(target)
    old_lr = learn.lr
    changed(learn)
    new = learn.get_preds(dl=learn.dls.valid)[0]
    for export in (learn.export, lambda t: pipekit.save(learn, t)):
        with monkeypatch.context() as m:
            interrupt_weights(m)
            with pytest.raises(KeyboardInterrupt):
                export(target)
        assert not (target / "manifest.json").exists()  # removed first, so the new record on the old weights ...
        with pytest.raises(ExportError, match=rf"{target.name} has no manifest.json; it is not a pipekit file"):
            load_learner(target)  # ... is never loaded
        assert hidden(target) == [] and hidden(tmp_path) == []  # no temporary file, no sibling folder
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    learn.export(target)  # uninterrupted, the folder is an export again, of the new learner
    assert torch.allclose(preds(target, learn), new, atol=1e-6) and load_learner(target).lr == learn.lr != old_lr
    assert hidden(target) == []


@pytest.mark.parametrize("name", ["model", "model.pipekit"])
def test_an_interrupted_first_export_leaves_nothing(learn, tmp_path, monkeypatch, name):
    with monkeypatch.context() as m:
        interrupt_weights(m)
        with pytest.raises(KeyboardInterrupt):
            learn.export(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_export_writes_into_the_folder_itself_and_keeps_its_mode(learn, tmp_path, monkeypatch):
    """The folder is never renamed (a mount point cannot be): its files are replaced in place."""
    target = tmp_path / "model"
    target.mkdir()
    target.chmod(0o750)
    inode = target.stat().st_ino
    learn.export(target)
    changed(learn)
    new = learn.get_preds(dl=learn.dls.valid)[0]
    rename = os.rename

    def no_folder_rename(src, dst):
        if Path(src) == target or Path(dst) == target:
            raise OSError(16, "Device or resource busy", str(src))
        return rename(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "rename", no_folder_rename)
        learn.export(target)
    assert target.stat().st_ino == inode and (target.stat().st_mode & 0o777) == 0o750
    assert torch.allclose(preds(target, learn), new, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"] and hidden(target) == []


@pytest.fixture(scope="module")
def forest():
    """A forest on real rows of adult_sample: its export holds arrays.npz (the learner's holds none)."""
    data = Path(os.environ["PIPEKIT_DATA"]) if os.environ.get("PIPEKIT_DATA") else None
    if data is None or not (data / "adult_sample" / "adult.csv").is_file():
        pytest.skip("needs $PIPEKIT_DATA")
    df = pl.read_csv(data / "adult_sample" / "adult.csv", n_rows=300)
    xs = df.select("age", "education-num", "hours-per-week").cast(pl.Float64)
    return RandomForest("regression", n_estimators=3, seed=0).fit(as_data(xs, y=df["fnlwgt"].cast(pl.Float64).to_numpy()))


def test_a_users_own_files_are_kept_by_a_folder_export(learn, tmp_path):
    target = tmp_path / "results"
    target.mkdir()
    mine = np.arange(5.0)
    np.savez(target / "arrays.npz", mine=mine)
    (target / "notes.txt").write_text("mine")
    assert "arrays.npz" not in zipfile.ZipFile(learn.export(tmp_path / "zipped.pipekit")).namelist()
    learn.export(target)  # an export without arrays.npz
    assert np.array_equal(np.load(target / "arrays.npz")["mine"], mine)  # not the export's: kept
    assert (target / "notes.txt").read_text() == "mine"
    assert load_learner(target).lr == learn.lr


def test_a_folder_holding_another_programs_manifest_is_refused_and_untouched(learn, tmp_path):
    target = tmp_path / "results"
    target.mkdir()
    for text in ('{"name": "my-app", "version": 1}', "not json {"):
        (target / "manifest.json").write_text(text)
        (target / "record.json").write_text('{"mine": true}')
        before = contents(target)
        with pytest.raises(ExportError, match=rf"{target / 'manifest.json'} is not a pipekit export's manifest.*"
                                              r"overwrite it; export into another folder"):
            learn.export(target)
        assert contents(target) == before


def test_re_exporting_a_model_without_arrays_removes_the_previous_exports_arrays(learn, forest, tmp_path):
    target = tmp_path / "model"
    pipekit.save(forest, target)
    assert (target / "arrays.npz").exists()
    (target / "notes.txt").write_text("mine")
    learn.export(target)
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "notes.txt", "record.json",
                                                        "weights.safetensors"]
    assert load_learner(target).lr == learn.lr
    pipekit.save(forest, target)  # and back: the learner's weights go, the forest loads as itself
    assert sorted(p.name for p in target.iterdir()) == ["arrays.npz", "manifest.json", "notes.txt", "record.json"]
    assert isinstance(pipekit.load(target), RandomForest)


def test_a_folder_holding_other_files_is_written_into_and_never_loads_a_mix(learn, tmp_path, monkeypatch):
    target = tmp_path / "results"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    learn.export(target)
    changed(learn)
    new = learn.get_preds(dl=learn.dls.valid)[0]
    with monkeypatch.context() as m:
        interrupt_weights(m)
        with pytest.raises(KeyboardInterrupt):
            learn.export(target)
    assert (target / "notes.txt").read_text() == "mine"  # the user's file is kept
    assert hidden(target) == [] and hidden(tmp_path) == []
    with pytest.raises(ExportError, match="no manifest.json"):  # refused, never the new record on the old weights
        load_learner(target)
    learn.export(target)
    assert torch.allclose(preds(target, learn), new, atol=1e-6) and (target / "notes.txt").read_text() == "mine"


def test_a_file_where_the_folder_would_go_is_refused_and_kept(learn, tmp_path):
    (tmp_path / "model").write_text("not an export")
    with pytest.raises(ExportError, match=r"model: a file of that name exists.*model.pipekit"):
        learn.export(tmp_path / "model")
    assert (tmp_path / "model").read_text() == "not an export"


def test_the_augmentation_pool_follows_torch_set_num_threads(monkeypatch):
    monkeypatch.delenv("PIPEKIT_AUG_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert augment.thread_pool()._max_workers == 1
        seen: list[tuple[int, int, str]] = []
        augment.run_chunks(lambda lo, hi: seen.append((lo, hi, threading.current_thread().name)), 8)
        assert seen == [(0, 8, threading.current_thread().name)]  # one chunk, in the calling thread
        torch.set_num_threads(2)
        assert augment.thread_pool()._max_workers == min(2, os.cpu_count() or 1)
        assert augment.thread_pool() is augment.thread_pool()  # not remade while the count stays
        monkeypatch.setenv("PIPEKIT_AUG_THREADS", "3")
        assert augment.thread_pool()._max_workers == 3  # the variable, when set, decides
    finally:
        torch.set_num_threads(before)


def test_fit_with_gradients_off_is_refused_and_predicting_still_works(learn):
    weights = {k: v.clone() for k, v in learn.model.state_dict().items()}
    outside = learn.get_preds(dl=learn.dls.valid)[0]
    for off in (torch.no_grad, torch.inference_mode, lambda: torch.set_grad_enabled(False)):
        with off():
            with pytest.raises(ParameterError, match=r"fit: gradients are off.*torch\.no_grad\(\).*call fit outside"):
                learn.fit(1, 1e-2)
            with pytest.raises(ParameterError, match="gradients are off"):
                learn.fit_one_cycle(1, 1e-2)
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in weights.items())
    with torch.no_grad():
        inside = learn.get_preds(dl=learn.dls.valid)[0]
        assert len(learn.validate()) == 2
    assert torch.equal(inside, outside)
