"""What a user of an installed pipekit meets outside a source checkout: `pipekit bench` runs only pipekit's own
benchmarks (never a project's ``benchmarks/`` folder), the recipes' help names a command that works installed,
the demo's figure goes where every pipekit figure goes, and `pipekit` alone lists its commands."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pipekit
from pipekit import cli
from pipekit.cli import main
from pipekit.recipe_files import builtin_recipes

REPO = Path(pipekit.__file__).resolve().parents[1]
COMMANDS = ["datasets", "cache", "run", "summary", "predict", "bench", "bench-loader"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user's own project folder, the current folder, with a ``benchmarks/`` script that leaves a marker when run."""
    folder = tmp_path / "project"
    (folder / "benchmarks").mkdir(parents=True)
    marker = tmp_path / "evil_ran"
    (folder / "benchmarks" / "evil.py").write_text(
        f'"""Migrates the database."""\nfrom pathlib import Path\nPath({str(marker)!r}).write_text("ran")\n')
    monkeypatch.chdir(folder)
    return marker


def test_bench_never_runs_the_current_folders_benchmarks(project, tmp_path, monkeypatch, capsys):
    # a source checkout (pyproject.toml beside the package) with one benchmark of its own
    checkout = tmp_path / "checkout"
    (checkout / "benchmarks").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("[project]\nname = 'pipekit'\n")
    (checkout / "benchmarks" / "own.py").write_text('"""Own throughput."""\nprint("own ratio 1.0")\n')
    monkeypatch.setattr(cli, "CHECKOUT", checkout)
    assert main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in listed] == ["own"]
    assert main(["bench"]) == 0
    out = capsys.readouterr().out
    assert "== benchmark own\nown ratio 1.0" in out and "evil" not in out
    with pytest.raises(SystemExit, match="no benchmark named 'evil'; available: own"):
        main(["bench", "evil"])
    assert not project.exists()


def test_bench_outside_a_checkout_refuses_whatever_the_current_folder_holds(project, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "CHECKOUT", tmp_path / "site-packages")  # as installed from a wheel
    with pytest.raises(SystemExit, match=r"bench --list: no benchmarks here.*source checkout"):
        main(["bench", "--list"])
    with pytest.raises(SystemExit, match="no benchmarks to run.*source checkout"):
        main(["bench"])
    with pytest.raises(SystemExit, match="no benchmark named 'evil'"):
        main(["bench", "evil"])
    assert not project.exists()


def test_bench_in_this_checkout_lists_its_own_benchmarks_from_any_folder(project, capsys):
    if not (REPO / "pyproject.toml").is_file() or not (REPO / "benchmarks").is_dir():
        pytest.skip("pipekit is not running from a source checkout")
    assert main(["bench", "--list"]) == 0
    names = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()]
    own = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if not p.stem.startswith("_")
                 and p.stem != "run_all")
    assert names == own and "evil" not in names
    assert not project.exists()


def _docstring(name: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec(f"pipekit.recipes.{name}")
    assert spec is not None and spec.origin
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or ""


@pytest.mark.parametrize("name", ["adult_ensemble", "movielens"])
def test_recipe_help_names_pipekit_run(name, capsys):
    assert main(["run", name, "--help"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"Run:\s+pipekit run {name} \[--quick\]", out)  # the help reflows the docstring
    assert "python recipes/" not in out


def test_every_recipe_says_how_to_run_it_installed():
    for name in builtin_recipes():
        doc = _docstring(name)
        assert "python recipes/" not in doc, name
        for cmd in re.findall(r"pipekit run (\S+)", doc):
            assert cmd == name, (name, cmd)


def test_pretrained_text_message_names_the_recipe_command():
    from pipekit.core.errors import ParameterError
    from pipekit.text.learner import _check_pretrained

    with pytest.raises(ParameterError, match=r"as the recipe `pipekit run imdb_sample` does") as e:
        _check_pretrained("language_model_learner", True, False)
    assert "recipes/imdb_sample.py" not in str(e.value)


def test_demo_draws_its_batch_in_pipekits_plot_folder(tmp_path, monkeypatch):
    from pipekit.data.plotting import plot_dir
    from pipekit.recipes import demo

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIPEKIT_PLOTS", raising=False)
    assert demo.batch_figure() == plot_dir() / "demo_batch.png" == Path("pipekit_plots") / "demo_batch.png"
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("PIPEKIT_PLOTS", str(tmp_path / "figs"))  # as `make demo` sets it
    assert demo.batch_figure() == tmp_path / "figs" / "demo_batch.png"


def _says_the_commands(text: str) -> None:
    assert text.startswith("usage: pipekit")
    for command in COMMANDS:
        assert re.search(rf"^\s+{re.escape(command)}\b", text, re.M), command
    assert not re.search(r"\bcmd\b", text)


def test_pipekit_alone_prints_its_commands(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    _says_the_commands(err)


def test_python_m_pipekit_alone_prints_its_commands(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipekit"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    _says_the_commands(r.stderr)
