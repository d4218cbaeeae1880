"""A text learner takes the texts it is given as texts, as fastai's: a ``str`` given to ``predict``, ``test_dl`` or
``pipekit predict`` is the text itself, never a file it names, and only a ``pathlib.Path`` is read.

A ``TextBlock.from_folder`` export keeps ``read_files=True`` (its training items were files), and a record can say
``read_files: true`` for any text block: neither turns a user's texts into files to open (a model served on users'
texts would otherwise read ``/etc/hostname`` given that name). Real data: 100 imdb_sample reviews, written out as
folders for the folder models; no training (an unfitted learner exports and predicts).
"""
from __future__ import annotations

import os

import pandas as pd
import polars as pl
import pytest
import torch
from file_edits import edited_copy

import pipekit
import pipekit.datasets as D
from pipekit.cli import main
from pipekit.core.errors import DataError
from pipekit.text import AWD_LSTM, TextDataLoaders, text_classifier_learner

SMALL = dict(emb_sz=16, n_hid=32, n_layers=1)
#: words the imdb vocabulary holds, written to a file whose name is then given as a text
CONTENT = "this movie was the worst and the film is bad"


@pytest.fixture(scope="module")
def reviews():
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    return pl.concat([df.filter(~pl.col("is_valid")).head(80), df.filter(pl.col("is_valid")).head(20)])


@pytest.fixture(scope="module")
def folder_learner(reviews, tmp_path_factory):
    root = tmp_path_factory.mktemp("imdb_folders")
    for i, (label, text, valid) in enumerate(reviews.iter_rows()):
        folder = root / ("valid" if valid else "train") / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.txt").write_text(text, encoding="utf-8")
    dls = TextDataLoaders.from_folder(root, valid="valid", bs=16, seed=0, cache_dir=False)
    pipekit.set_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, pretrained=False, config=SMALL)
    return root, learn, learn.export(root.parent / "folder.pipekit")


@pytest.fixture(scope="module")
def df_export(reviews, tmp_path_factory):
    dls = TextDataLoaders.from_df(reviews, text_col="text", label_col="label", valid_col="is_valid", bs=16, seed=0,
                                  cache_dir=False)
    pipekit.set_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, pretrained=False, config=SMALL)
    return learn.export(tmp_path_factory.mktemp("df_export") / "text.pipekit")


@pytest.fixture()
def named_file(tmp_path):
    """A file of known words, and its name (no ``.txt``: a name such as ``/etc/hostname``)."""
    f = tmp_path / "notes"
    f.write_text(CONTENT, encoding="utf-8")
    return f


def _tokens(learn, values):
    block = learn.dls.blocks[0]
    ids = learn.dls.test_dl(values).one_batch()[0][0].tolist()
    return [block.vocab[i] for i in ids if block.vocab[i] != "xxpad"]


def _as_text(learn, text):
    """The tokens of ``text`` itself, through the loaded block's tokenizer and vocabulary."""
    block = learn.dls.blocks[0]
    return [block.vocab[i] for i in block.encode_text(text).tolist()]


def _read_files_true(record):
    recipe = record["dls"]["recipe"]
    for block in (recipe["params"]["blocks"][0], recipe["state"]["blocks_"][0]):
        block["params"]["read_files"] = True


def test_folder_export_keeps_read_files_and_predicts_texts(folder_learner):
    root, learn, export = folder_learner
    assert learn.dls.blocks[0].read_files and "movie" in learn.dls.blocks[0].vocab  # trained on the files' words
    f = sorted((root / "valid" / "positive").iterdir())[0]
    text = f.read_text(encoding="utf-8")
    loaded = pipekit.load(export)
    assert loaded.dls.blocks[0].read_files
    for review in ("I liked this movie", text):
        before, after = learn.predict(review), loaded.predict(review)
        assert after[0] == before[0] and torch.allclose(after[2], before[2], atol=1e-6)
    # a file given as a Path is read, in code and after loading
    for model in (learn, loaded):
        assert torch.allclose(model.predict(f)[2], learn.predict(text)[2], atol=1e-6)


def test_a_folder_model_takes_a_file_name_as_its_text(folder_learner, named_file):
    _, learn, export = folder_learner
    for model in (learn, pipekit.load(export)):  # in code and loaded alike
        seen = _tokens(model, [str(named_file)])
        assert seen == _as_text(model, str(named_file)) and seen != _as_text(model, CONTENT)
        assert not {"movie", "worst", "film", "bad"} & set(seen)
        # a text file's name given as a str is refused, pointing to Path, rather than classified as words
        txt = named_file.with_suffix(".txt")
        txt.write_text(CONTENT, encoding="utf-8")
        with pytest.raises(DataError, match=r"notes.txt' looks like the name of a text file, but a text model takes "
                                            r"a str as the text itself; give the file as a path, Path\("):
            model.predict(str(txt))
        with pytest.raises(DataError, match="notes.txt' looks like the name of a text file"):
            model.dls.test_dl([CONTENT, str(txt)])
        assert _tokens(model, [txt]) == _as_text(model, CONTENT)  # the Path is read


def test_record_saying_read_files_never_reads_inputs(df_export, named_file, tmp_path, capsys):
    genuine = pipekit.load(df_export)
    assert not genuine.dls.blocks[0].read_files
    crafted = pipekit.load(edited_copy(df_export, _read_files_true, tmp_path / "read.pipekit"))
    assert crafted.dls.blocks[0].read_files
    seen = _tokens(crafted, [str(named_file)])
    assert seen == _tokens(genuine, [str(named_file)]) == _as_text(crafted, str(named_file))
    assert not {"movie", "worst", "film", "bad"} & set(seen)
    assert torch.allclose(crafted.predict(str(named_file))[2], genuine.predict(str(named_file))[2], atol=1e-6)
    # a file given as a Path is read by both: the user's own choice, as for any text model
    assert torch.allclose(crafted.predict(named_file)[2], genuine.predict(CONTENT)[2], atol=1e-6)
    # pipekit predict: each line of a .txt file is a text, not a file to open
    lines = tmp_path / "lines.txt"
    lines.write_text(f"{named_file}\n{CONTENT}\n", encoding="utf-8")
    assert main(["predict", str(tmp_path / "read.pipekit"), str(lines)]) == 0
    by_crafted = capsys.readouterr().out
    assert main(["predict", str(df_export), str(lines)]) == 0
    assert by_crafted == capsys.readouterr().out
    assert len(by_crafted.splitlines()) == 2, by_crafted


def test_rebuilt_recipe_keeps_new_texts_as_texts(folder_learner, named_file):
    root, _, export = folder_learner
    loaded = pipekit.load(export)
    files = sorted(root.rglob("*.txt"))  # a file's recipe built again on the user's files
    dls = loaded.dls.recipe.dataloaders(files, bs=16, seed=0)
    block = dls.blocks[0]
    assert "movie" in block.vocab  # its training items are files, read
    ids = dls.test_dl([str(named_file)]).one_batch()[0][0].tolist()
    assert ids == block.encode_text(str(named_file)).tolist() != block.encode_text(CONTENT).tolist()


def test_a_text_column_named_path_holds_texts(reviews, named_file, tmp_path):
    """A table's column of str is texts whatever it is named: a model whose text column is ``path`` reads no file a
    text of that column names, in code and loaded; files are read when named as files (a Path, an os.DirEntry)."""
    df = reviews.rename({"text": "path"})
    dls = TextDataLoaders.from_df(df, text_col="path", label_col="label", valid_col="is_valid", bs=16, seed=0,
                                  cache_dir=False)
    pipekit.set_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, pretrained=False, config=SMALL)
    loaded = pipekit.load(learn.export(tmp_path / "path_col.pipekit"))
    for model in (learn, loaded):
        seen = _tokens(model, pl.DataFrame({"path": [str(named_file)]}))
        assert seen == _as_text(model, str(named_file)) and not {"movie", "worst", "film", "bad"} & set(seen)
        table = tmp_path / "new_texts.csv"  # the same column saved as a CSV, given by its path: rows of texts
        pl.DataFrame({"path": [str(named_file)]}).write_csv(table)
        assert _tokens(model, table) == seen
        assert _tokens(model, pl.DataFrame({"path": ["great movie"]})) == _as_text(model, "great movie")
        entry = next(e for e in os.scandir(named_file.parent) if e.name == named_file.name)
        assert _tokens(model, [entry]) == _tokens(model, [named_file]) == _as_text(model, CONTENT)
        # any iterable of path objects names files: Path.glob, os.scandir
        assert _tokens(model, named_file.parent.glob(named_file.name)) == _as_text(model, CONTENT)
        assert _tokens(model, pd.Series([named_file], name="file")) == _as_text(model, CONTENT)  # a column of Paths
        assert _tokens(model, (e for e in os.scandir(named_file.parent) if e.name == named_file.name)) == \
            _as_text(model, CONTENT)
