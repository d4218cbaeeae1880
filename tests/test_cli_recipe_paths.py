"""The command line run in a folder of the user's: a SyntaxError blamed on the file it comes from, recipe options
(``pipekit run demo --quick``), benchmark options and results folder, recipe exports kept out of the current folder,
and ``pipekit predict`` on compressed tables and a folder given as the model."""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipekit.cli import CHECKOUT, main

ENV = {**os.environ, "PIPEKIT_QUIET": "1", "MPLBACKEND": "Agg"}


def _pipekit(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipekit.cli", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


# ------------------------------------------------------------------ SyntaxError: whose it is
@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "brokenhelper_pk.py").write_text("x = (1,\n")
    (tmp_path / "proj" / "main_recipe.py").write_text(
        '"""my recipe"""\nimport os\n\ndef main():\n    import brokenhelper_pk\n\nif __name__ == "__main__":\n'
        "    main()\n")
    (tmp_path / "proj" / "evalr.py").write_text('if __name__ == "__main__":\n    expr = "1 +* 2"\n    print(eval(expr))\n')
    (tmp_path / "proj" / "sumr.py").write_text("import brokenhelper_pk\n\ndef datablock():\n    return None\n")
    (tmp_path / "proj" / "bad.py").write_text("import os\nx = (\n")
    return tmp_path


def test_syntax_error_in_an_imported_module_names_that_file_and_line(project, capsys):
    assert main(["run", "proj/main_recipe.py"]) == 1
    err = capsys.readouterr().err
    assert "brokenhelper_pk.py" in err and "line 1, column 5" in err and "'(' was never closed" in err
    assert "main_recipe.py' is not valid Python" not in err and "imported while the recipe" in err
    with pytest.raises(SystemExit) as e:  # summary and bench-loader load the recipe as a module
        main(["summary", "proj/sumr.py"])
    assert "brokenhelper_pk.py" in str(e.value.code) and "sumr.py' is not valid Python" not in str(e.value.code)


def test_syntax_error_from_eval_is_the_recipes_own_error_with_its_traceback(project):
    done = _pipekit(["run", "proj/evalr.py"], project)
    assert done.returncode == 1
    assert "is not valid Python" not in done.stderr
    assert 'evalr.py", line 3' in done.stderr and "SyntaxError: invalid syntax" in done.stderr


def test_a_recipe_that_does_not_compile_is_still_named_with_its_line(project, capsys):
    assert main(["run", "proj/bad.py"]) == 1
    assert "the recipe 'proj/bad.py' is not valid Python ('(' was never closed at line 2" in capsys.readouterr().err


# ------------------------------------------------------------------ pipekit run demo --help / --quick
def test_demo_help_lists_quick_and_starts_no_training(tmp_path):
    done = _pipekit(["run", "demo", "--help"], tmp_path, timeout=60)
    assert done.returncode == 0 and "--quick" in done.stdout and "result:" not in done.stdout


def test_demo_quick_is_a_small_run_with_the_result_line(tmp_path):
    env = {**ENV, "PIPEKIT_PLOTS": str(tmp_path / "plots")}
    done = subprocess.run([sys.executable, "-m", "pipekit.cli", "run", "demo", "--quick"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = [ln for ln in done.stdout.splitlines() if ln.startswith("result: dogscats is_cat efficientnet_lite0")]
    assert len(result) == 1 and "(20 train / 10 valid photos)" in result[0], done.stdout
    assert "export_roundtrip=identical" in result[0] and "DataLoaders(train=20 items" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"]


# ------------------------------------------------------------------ pipekit bench
def test_bench_names_after_args_are_refused_saying_the_order(monkeypatch):
    import pipekit.cli

    ran: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(pipekit.cli, "_run_main", lambda path, argv: ran.append((path.stem, argv)) or 0)
    with pytest.raises(SystemExit) as e:
        main(["bench", "--args", "--repeats", "1", "backends_fit"])
    assert "put the names first: pipekit bench backends_fit --args --repeats 1" in str(e.value.code) and ran == []
    assert main(["bench", "backends_fit", "--args", "--repeats", "1"]) == 0
    assert ran == [("backends_fit", ["--repeats", "1"])]


def test_bench_options_without_args_say_to_use_args(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "backends_fit", "--repeats", "1"])
    assert e.value.code == 2
    assert "pipekit bench backends_fit --args --repeats 1" in capsys.readouterr().err


def test_backends_fit_writes_into_the_checkouts_bench_results(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("backends_fit", CHECKOUT / "benchmarks" / "backends_fit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.ROOT == CHECKOUT
    # the real adult rows, a few of them, so the run takes seconds; the checkout stands in at tmp_path/checkout
    from pipekit.datasets import path

    small = tmp_path / "adult_sample"
    small.mkdir()
    pl.read_csv(path("adult_sample") / "adult.csv").head(600).write_csv(small / "adult.csv")
    monkeypatch.setattr(mod, "path", lambda name: small)
    monkeypatch.setattr(mod, "ROOT", tmp_path / "checkout")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    rec = mod.main(["--repeats", "1"])
    assert rec["rows"] == 480 and (tmp_path / "checkout" / "bench_results" / "backends_fit.json").is_file()
    assert list(work.iterdir()) == []


# ------------------------------------------------------------------ recipe exports: a temporary folder by default
def test_adult_ensemble_keeps_nothing_in_the_current_folder_unless_out_is_given(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "adult_ensemble", "--quick"]) == 0
    out = capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [] and "result: adult valid accuracy" in out and "written to" not in out


def test_rossmann_ensemble_writes_its_plots_in_a_temporary_folder_by_default(tmp_path, monkeypatch):
    import importlib

    mod = importlib.import_module("pipekit.recipes.rossmann_ensemble")
    seen = []

    def fake(args, out, kept=False):
        seen.append((out, out.is_dir(), kept))
        return {}

    monkeypatch.setattr(mod, "fit_and_explain", fake)
    monkeypatch.chdir(tmp_path)
    mod.main(quick=True)
    mod.main(quick=True, out="mine")
    (temp, existed, kept), (chosen, _, kept_chosen) = seen
    assert existed and not kept and not temp.exists() and tmp_path not in temp.parents
    assert chosen == Path("mine") and kept_chosen
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ pipekit predict
def test_predict_reads_a_gzipped_csv_for_a_table_model(forest_file, tmp_path, capsys):
    model, df = forest_file
    plain, packed = tmp_path / "rows.csv", tmp_path / "rows.csv.gz"
    df.slice(900, 5).write_csv(plain)
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert main(["predict", str(model), str(plain)]) == 0
    want = capsys.readouterr().out.replace(str(plain), str(packed))
    assert main(["predict", str(model), str(packed)]) == 0
    got = capsys.readouterr().out
    assert got == want and len(got.splitlines()) == 5


def test_predict_with_a_folder_as_the_model_says_it_is_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["predict", "in", "rows.csv"])
    assert "'in' is a folder, not a model file" in str(e.value.code) and "not found" not in str(e.value.code)
