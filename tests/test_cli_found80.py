"""`pipekit run NAME` options as users type them: an option given with --quick wins over what --quick sets (and
`--help` says what that is), a bad number is argparse's one-line error before any work, for every numeric option of
every built-in recipe; `pipekit predict` reads a .txt file whole for a text model trained one document per file;
book_spellings' closest movies are other movies. Real data, tiny settings (a few batches, a few epochs)."""
from __future__ import annotations

import argparse
import re

import polars as pl
import pytest

import pipekit
import pipekit.datasets as D
from pipekit.cli import main
from pipekit.recipe_files import builtin_recipes


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["run", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _result(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("result:")]
    assert len(lines) == 1, out[-2000:]
    return lines[0]


# ------------------------------------------------------------------ an option given with --quick wins
def test_mnist_tiny_quick_trains_the_epochs_given(capsys):
    rc, out, err = _run(capsys, "mnist_tiny", "--quick", "--epochs", "1")
    assert rc == 0, err
    assert "(1 epochs each)" in _result(out)


def test_rossmann_quick_trains_the_epochs_given(capsys):
    rc, out, err = _run(capsys, "rossmann", "--quick", "--epochs", "2", "--bs", "4096", "--layers", "8")
    assert rc == 0, err
    assert "; 2 epochs," in _result(out)


def test_resnet_fashion_quick_takes_the_images_and_epochs_given(capsys):
    rc, out, err = _run(capsys, "resnet_fashion", "--quick", "--n-train", "64", "--cnn-epochs", "2",
                        "--resnet-epochs", "1")
    assert rc == 0, err
    line = _result(out)
    assert "(64 of 60000 train / 512 test images, 28px)" in line
    assert "cnn (2 epochs)" in line and "resnet (1 epochs)" in line


def test_transfer_quick_takes_the_epochs_and_pretraining_images_given(capsys):
    rc, out, err = _run(capsys, "transfer", "--quick", "--epochs", "2", "--n-pretrain", "64", "--arch", "simple_cnn")
    assert rc == 0, err
    line = _result(out)
    assert "(96 train digits, 2 epochs after the frozen one)" in line and "on 64 images" in line


class _Stop(Exception):
    pass


def test_rossmann_ensemble_quick_gives_its_net_the_epochs_given(capsys, monkeypatch):
    from pipekit.ensemble import TorchTabular

    seen = []

    def fit(self, *args, **kwargs):  # the net's epochs, then stop: its members and plots are another test's
        seen.append(self.epochs)
        raise _Stop

    monkeypatch.setattr(TorchTabular, "fit", fit)
    with pytest.raises(_Stop):
        main(["run", "rossmann_ensemble", "--quick", "--epochs", "3"])
    with pytest.raises(_Stop):
        main(["run", "rossmann_ensemble", "--quick"])
    assert seen == [3, 1]


@pytest.mark.parametrize("name, says", [
    ("mnist_tiny", ["--epochs 2 unless given", "(default 5; 2 with --quick)"]),
    ("rossmann", ["--epochs 1 unless given", "(default 8; 1 with --quick)"]),
    ("rossmann_ensemble", ["--epochs 1 unless given", "(default 5; 1 with --quick)"]),
    ("transfer", ["--n-pretrain 128 --epochs 1 unless given", "(default 4000; 128 with --quick)",
                  "(default 4; 1 with --quick)"]),
    ("resnet_fashion", ["--n-train 1024 --cnn-epochs 1 --resnet-epochs 3 unless given",
                        "(default 20,000; 1,024 with --quick)", "(default 3; 1 with --quick)",
                        "(default 5; 3 with --quick)"]),
])
def test_help_says_what_quick_sets(name, says, capsys):
    rc, out, _ = _run(capsys, name, "--help")
    flat = " ".join(out.split())
    assert rc == 0 and all(s in flat for s in says), flat


# ------------------------------------------------------------------ a bad number: one line, before any work
@pytest.mark.parametrize("argv, says", [
    (["imdb_sample", "--quick", "--lr-div", "0"], "argument --lr-div: expected a number in (0, inf), got '0'"),
    (["imdb_sample", "--final-lr", "-1"], "argument --final-lr: expected a number in (0, inf), got '-1'"),
    (["imdb_sample", "--clf-max-vocab", "5"], "argument --clf-max-vocab: expected an integer in [10, inf] (the 9 "
                                              "special tokens and at least one word), got '5'"),
    (["imdb_sample", "--folds", "1"], "argument --folds: expected an integer in [2, inf] (the stacked ensemble needs "
                                      "out-of-fold predictions), got '1'"),
    (["mnist_tiny", "--quick", "--threads", "0"], "argument --threads: expected an integer in [1, inf], got '0'"),
    (["transfer", "--quick", "--imagenet-size", "0"],
     "argument --imagenet-size: expected an integer in [1, inf], got '0'"),
    (["resnet_fashion", "--n-train", "60001"], "argument --n-train: expected an integer in [1, 60000] (Fashion-MNIST "
                                               "has 60,000 training images), got '60001'"),
    (["rossmann_ensemble", "--quick", "--epochs", "0"], "argument --epochs: expected an integer in [1, inf], got '0'"),
    (["rossmann", "--layers", "500", "0"], "argument --layers: expected an integer in [1, inf], got '0'"),
    (["rossmann", "--seed", "-1"], "argument --seed: expected a seed from 0 to 2**64 - 1, got '-1'"),
    (["adult_ensemble", "--n-jobs", "0"], "argument --n-jobs: expected -1 (every core) or a positive integer, got '0'"),
    (["coco_tiny", "--folds", "1"], "argument --folds: expected 0 (the recipe's one split) or k >= 2 folds, got '1'"),
    (["language_model", "--threads", "0"], "argument --threads: expected an integer in [1, inf], got '0'"),
])
def test_a_bad_number_stops_the_recipe_in_one_line(argv, says, capsys):
    rc, out, err = _run(capsys, *argv)
    assert rc == 2 and not out
    assert err.splitlines()[-1] == f"pipekit run {argv[0]}: error: {says}"


def _parsers(monkeypatch) -> dict[str, argparse.ArgumentParser]:
    """Each built-in recipe's argument parser, as `pipekit run NAME` builds it (nothing trained)."""
    found: dict[str, argparse.ArgumentParser] = {}
    name = ""

    def parsed_then_stop(self, args=None, namespace=None):
        found[name] = self
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parsed_then_stop)
    for name in builtin_recipes():
        assert main(["run", name]) == 0
    return found


def test_every_numeric_option_of_every_recipe_has_a_range(monkeypatch):
    parsers = _parsers(monkeypatch)
    assert {"imdb_sample", "rossmann", "transfer", "resnet_fashion", "coco_tiny"} <= set(parsers)
    plain = [f"{name} {a.option_strings[0]}" for name, p in parsers.items() for a in p._actions
             if a.type in (int, float)]
    assert plain == []
    # what each takes: 0 only where it means something (a seed; a recipe's one split; no dropout)
    zero_ok = {f"{name} {a.option_strings[0]}" for name, p in parsers.items() for a in p._actions
               if a.type is not None and getattr(a.type, "__name__", "") in ("integer", "number")
               and _accepts(a.type, "0")}
    assert zero_ok == {"adult --seed", "adult_ensemble --seed", "imdb_sample --seed", "movielens --seed",
                       "rossmann --seed", "rossmann_ensemble --seed", "coco_tiny --folds", "imdb_sample --drop-mult",
                       "movielens --wd"}


def _accepts(parse, text: str) -> bool:
    try:
        parse(text)
    except argparse.ArgumentTypeError:
        return False
    return True


def test_n_jobs_takes_every_core(monkeypatch):
    parsers = _parsers(monkeypatch)
    for name in ("adult_ensemble", "rossmann_ensemble"):
        assert parsers[name].parse_known_args(["--n-jobs", "-1"])[0].n_jobs == -1


# ------------------------------------------------------------------ pipekit predict: a document per file
@pytest.fixture(scope="module")
def folder_model(tmp_path_factory):
    """A text classifier trained one document per file (from_folder; unfitted weights: what is read is tested)."""
    from pipekit.text import AWD_LSTM, TextDataLoaders, text_classifier_learner

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    df = pl.concat([df.filter(~pl.col("is_valid")).head(60), df.filter(pl.col("is_valid")).head(12)])
    root = tmp_path_factory.mktemp("docs")
    for i, (label, text, valid) in enumerate(df.iter_rows()):
        folder = root / ("valid" if valid else "train") / label
        folder.mkdir(parents=True, exist_ok=True)
        # a sentence a line: a document of several lines
        (folder / f"{i}.txt").write_text("\n".join(re.split(r"(?<=[.!?]) ", text)), encoding="utf-8")
    dls = TextDataLoaders.from_folder(root, valid="valid", bs=8, seed=0, cache_dir=False)
    pipekit.set_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, pretrained=False, config=dict(emb_sz=16, n_hid=32, n_layers=1))
    return root, learn, learn.export(root.parent / "docs.pipekit")


def test_predict_reads_a_document_file_whole_with_a_model_trained_on_files(folder_model, capsys):
    root, learn, export = folder_model
    docs = sorted((root / "valid").rglob("*.txt"))
    doc = docs[0]
    assert len(doc.read_text(encoding="utf-8").splitlines()) > 1
    assert main(["predict", str(export), str(doc)]) == 0
    out = capsys.readouterr().out.splitlines()
    label, _, probs = learn.predict(doc.read_text(encoding="utf-8"))
    assert len(out) == 1
    where, said, prob = out[0].split("\t")
    assert (where, said) == (str(doc), label) and float(prob) == pytest.approx(float(probs.max()), abs=2e-4)
    # a folder: one line per document
    assert main(["predict", str(export), str(root / "valid")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split("\t")[0] for ln in lines] == [str(d) for d in docs] and len(docs) == 12
    # a blank document is named, the others still predicted
    blank = root.parent / "blank.txt"
    blank.write_text("\n  \n", encoding="utf-8")
    assert main(["predict", str(export), str(blank), str(doc)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == lines[:1] and err.strip() == f"pipekit predict: {blank}: the file holds no text"


def test_predict_help_says_which_text_rule_applies(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "a text a line, or one text per file for a model trained one document per file" in flat


def test_a_model_trained_on_a_text_column_still_reads_a_line_per_text(tmp_path, capsys):
    from pipekit.text import AWD_LSTM, TextDataLoaders, text_classifier_learner

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(40)
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=8, seed=0,
                                  cache_dir=False)
    learn = text_classifier_learner(dls, AWD_LSTM, pretrained=False, config=dict(emb_sz=16, n_hid=32, n_layers=1))
    export = learn.export(tmp_path / "col.pipekit")
    doc = tmp_path / "doc.txt"
    doc.write_text("I loved this film.\nThe plot was thin.\n\nGreat cast.\n", encoding="utf-8")
    assert main(["predict", str(export), str(doc)]) == 0
    assert [ln.split("\t")[0] for ln in capsys.readouterr().out.splitlines()] == [
        f"{doc} line 1", f"{doc} line 2", f"{doc} line 4"]



def test_a_language_model_trained_on_files_reads_a_line_per_prompt(folder_model, capsys):
    """A language model trained from a folder (from_folder(is_lm=True)) takes prompts: a .txt file's lines, each
    continued on its own line of output, as for a language model trained on a column."""
    from pipekit.text import AWD_LSTM, TextDataLoaders, language_model_learner

    root, _, _ = folder_model
    dls = TextDataLoaders.from_folder(root, valid="valid", is_lm=True, bs=4, seq_len=16, seed=0, cache_dir=False)
    lm = language_model_learner(dls, AWD_LSTM, pretrained=False, config=dict(emb_sz=16, n_hid=32, n_layers=1))
    export = lm.export(root.parent / "lm.pipekit")
    doc = sorted((root / "valid").rglob("*.txt"))[0]
    numbered = [n for n, ln in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1) if ln.strip()]
    assert len(numbered) > 1
    assert main(["predict", str(export), str(doc)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln.split("\t")[0] for ln in out] == [f"{doc} line {n}" for n in numbered]
    # each line continued by the model: the prompt's words, then more (seeded: the same each time)
    assert all(len(ln.split("\t")[1].split()) > len(doc.read_text(encoding="utf-8").splitlines()[n - 1].split())
               for ln, n in zip(out, numbered))
    assert main(["predict", str(export), str(doc)]) == 0 and capsys.readouterr().out.splitlines() == out


def test_seeds_take_torch_s_range_and_a_booster_recipe_its_boosters(monkeypatch):
    parsers = _parsers(monkeypatch)
    assert parsers["adult"].parse_known_args(["--seed", str(2**40)])[0].seed == 2**40
    assert parsers["movielens"].parse_known_args(["--seed", str(2**64 - 1)])[0].seed == 2**64 - 1
    for name, seed in (("adult", str(2**64)), ("rossmann_ensemble", str(2**31))):
        with pytest.raises(SystemExit):
            parsers[name].parse_known_args(["--seed", seed])
    assert parsers["rossmann_ensemble"].parse_known_args(["--seed", str(2**31 - 1)])[0].seed == 2**31 - 1

# ------------------------------------------------------------------ book_spellings: the closest other movies
def test_book_spellings_closest_movies_leave_the_movie_out(capsys):
    rc, out, err = _run(capsys, "book_spellings", "--quick")
    assert rc == 0, err
    movie, closest = re.search(r"ch8_closest_to_(\S+)=(\S+)", _result(out)).groups()
    assert len(closest.split("/")) == 3 and movie not in closest.split("/")

