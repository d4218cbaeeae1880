"""Paths on the command line: ``pipekit predict MODEL FOLDER`` predicts the files in the folder, never a file a link in
it points to elsewhere; a recipe's ``--out`` is a folder checked before any work (a file refused), and bench-loader's
``--json``/``--plot`` are checked before anything is measured, the figures written whole and the chart's real file
name printed."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import pipekit.bench.cli as bench_cli
from pipekit.cli import main
from pipekit.core.errors import ParameterError

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))


# ------------------------------------------------------------------------------------ predict on a folder
def test_predict_on_a_folder_skips_links_to_files_outside_it_with_one_warning(forest_file, tmp_path, capsys):
    model, df = forest_file
    folder, outside = tmp_path / "in", tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    outside.mkdir()
    df.slice(500, 3).write_csv(folder / "rows.csv")
    (outside / "private.csv").write_text("TOPSECRET:$6$hash:19000:0:99999:7:::\n")
    df.slice(510, 2).write_csv(outside / "other_rows.csv")
    (folder / "secret.csv").symlink_to(outside / "private.csv")
    (folder / "sub" / "more.csv").symlink_to(outside / "other_rows.csv")
    (folder / "again.csv").symlink_to(folder / "rows.csv")  # a link to a file inside the folder: predicted
    assert main(["predict", str(model), str(folder)]) == 0
    got = capsys.readouterr()
    predicted = sorted({line.split(" row ")[0] for line in got.out.splitlines()})
    assert predicted == [str(folder / "again.csv"), str(folder / "rows.csv")]
    assert len(got.out.splitlines()) == 6 and "TOPSECRET" not in got.out + got.err
    warned = [line for line in got.err.splitlines() if "warning" in line]
    assert warned == [f"pipekit predict: {folder}: warning: skipped 2 link(s) to files outside the folder: "
                      f"['secret.csv -> {outside / 'private.csv'}', 'sub/more.csv -> {outside / 'other_rows.csv'}']; "
                      f"copy a file into {folder} (or give its path) to predict it"]


# ---------------------------------------------------------------------------------------- recipes' --out
@pytest.mark.parametrize("recipe", ["rossmann_ensemble", "imdb_sample", "adult_ensemble"])
def test_a_recipes_out_naming_a_file_is_refused_before_any_work(recipe, tmp_path, capsys, monkeypatch):
    import importlib

    mod = importlib.import_module(f"pipekit.recipes.{recipe}")
    started = []
    for step in ("fit_and_explain", "fit_and_report", "datablock"):
        if hasattr(mod, step):
            monkeypatch.setattr(mod, step, lambda *a, **k: started.append(a))
    afile = tmp_path / "afile.txt"
    afile.write_text("mine")
    assert main(["run", recipe, "--quick", "--out", str(afile)]) == 2
    assert f"argument --out: '{afile}' is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(ParameterError, match=rf"{recipe}: out='{afile}' is a file, not a folder"):
        mod.main(quick=True, out=afile)  # the same check from Python
    assert started == [] and afile.read_text() == "mine"


@pytest.mark.parametrize("recipe", ["rossmann_ensemble", "imdb_sample"])
def test_a_recipes_out_folder_loses_a_previous_runs_result_before_the_run(recipe, tmp_path, monkeypatch):
    """A folder with a result.json from an earlier run: it goes first, so a run that does not finish never leaves a
    folder that looks complete."""
    import importlib

    mod = importlib.import_module(f"pipekit.recipes.{recipe}")

    def failing(*a, **k):
        assert not (tmp_path / "run" / "result.json").exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(mod, "fit_and_explain" if hasattr(mod, "fit_and_explain") else "datablock", failing)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "result.json").write_text("{}")
    with pytest.raises(KeyboardInterrupt):
        mod.main(quick=True, out=tmp_path / "run")
    assert not (tmp_path / "run" / "result.json").exists()


# -------------------------------------------------------------------------------------- bench-loader files
@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_bench_loader_refuses_a_folder_for_its_files_before_measuring(option, tmp_path, capsys, monkeypatch):
    measured = []
    monkeypatch.setattr(bench_cli, "_measure", lambda *a, **k: measured.append(a))
    (tmp_path / "results").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["bench-loader", "mnist_tiny", "--batches", "2", option, str(tmp_path / "results")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err and f"'{tmp_path / 'results'}' is a folder" in err
    (tmp_path / "afile.txt").write_text("mine")
    with pytest.raises(SystemExit) as e:  # a file where its folder would go: refused as the options are read
        main(["bench-loader", "mnist_tiny", "--batches", "2", option, str(tmp_path / "afile.txt" / "x")])
    assert e.value.code == 2
    assert (f"argument {option}: '{tmp_path / 'afile.txt' / 'x'}' cannot be written: '{tmp_path / 'afile.txt'}' is "
            "a file") in capsys.readouterr().err
    assert measured == [] and list((tmp_path / "results").iterdir()) == []


def test_out_file_takes_a_file_to_be_made_and_refuses_a_folder_or_a_file_on_its_path(tmp_path):
    import argparse
    import re

    from pipekit.cli import out_file

    assert out_file(str(tmp_path / "new" / "deeper" / "figures.json")) == tmp_path / "new" / "deeper" / "figures.json"
    assert out_file("~/figures.json") == Path.home() / "figures.json"
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder, not a file"):
        out_file(str(tmp_path))
    (tmp_path / "afile.txt").write_text("mine")
    with pytest.raises(argparse.ArgumentTypeError,
                       match=re.escape(f"'{tmp_path / 'afile.txt'}' is a file, so the folder") + " .* cannot be made"):
        out_file(str(tmp_path / "afile.txt" / "sub" / "x.json"))


def test_bench_loader_writes_its_figures_whole_and_prints_the_charts_real_file(tmp_path, capsys, monkeypatch):
    if not (DATA / "mnist_tiny").is_dir():
        pytest.skip("needs $PIPEKIT_DATA")
    monkeypatch.chdir(tmp_path)
    assert main(["bench-loader", "mnist_tiny", "--batches", "2", "--rounds", "1", "--warm-epochs", "1",
                 "--json", "out/figures.json", "--plot", "out/profile"]) == 0
    out = capsys.readouterr().out
    assert "bar chart: out/profile.png" in out and "figures written to out/figures.json" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["figures.json", "profile.png"]
    assert json.loads((tmp_path / "out" / "figures.json").read_text())["profile"]
