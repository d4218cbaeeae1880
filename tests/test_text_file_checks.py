"""A text learner's file is checked against itself as it is loaded: a fitted subword tokenizer holds its model, the
model pads with the vocabulary's ``xxpad``, and a tokenizer the file names by a path is refused without looking the
path up on this machine. On imdb_sample exports of tiny models (a few hundred reviews, no training)."""
from __future__ import annotations

import pathlib
import re

import polars as pl
import pytest
from file_edits import edited_copy

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ExportError
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock, RandomSplitter
from pipekit.text import AWD_LSTM, TextBlock, Tokenizer, language_model_learner, text_classifier_learner

SMALL = dict(emb_sz=16, n_hid=32, n_layers=1)


@pytest.fixture(scope="module")
def reviews() -> pl.DataFrame:
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    return pl.concat([df.filter(~pl.col("is_valid")).head(160), df.filter(pl.col("is_valid")).head(40)])


@pytest.fixture(scope="module")
def exports(reviews, tmp_path_factory) -> dict[str, pathlib.Path]:
    folder = tmp_path_factory.mktemp("text_exports")
    dls_lm = DataBlock(blocks=TextBlock.from_df("text", is_lm=True), get_x=ColReader("text"),
                       splitter=RandomSplitter(0.1, seed=42)).dataloaders(reviews, bs=16, seed=42)
    lm = language_model_learner(dls_lm, AWD_LSTM, config=SMALL)
    dls = DataBlock(blocks=(TextBlock.from_df("text", vocab=dls_lm.vocab), CategoryBlock), get_x=ColReader("text"),
                    get_y=ColReader("label"), splitter=ColSplitter("is_valid")).dataloaders(reviews, bs=16, seed=42)
    clf = text_classifier_learner(dls, AWD_LSTM, config=SMALL)
    sub_dls = DataBlock(blocks=(TextBlock.from_df("text", tok=Tokenizer("bpe", vocab_sz=200)), CategoryBlock),
                        get_x=ColReader("text"), get_y=ColReader("label"),
                        splitter=ColSplitter("is_valid")).dataloaders(reviews, bs=16, seed=42)
    sub = text_classifier_learner(sub_dls, AWD_LSTM, config=SMALL)
    return {"lm": lm.export(folder / "lm.pipekit"), "clf": clf.export(folder / "clf.pipekit"),
            "bpe": sub.export(folder / "bpe.pipekit")}


def _tokenizer_record(r: dict) -> dict:
    return r["dls"]["recipe"]["state"]["blocks_"][0]["state"]["tfms_"][0]


@pytest.mark.parametrize("mode", ["bpe", "unigram"])
def test_a_subword_tokenizer_without_its_model_is_refused_at_load(exports, tmp_path, mode):
    # a word tokenizer's record turned into a subword one: no model, where predict would need one
    bad = edited_copy(exports["clf"], lambda r: _tokenizer_record(r)["params"].update(mode=mode),
                      tmp_path / "no_model.pipekit")
    with pytest.raises(ExportError, match=re.escape(
            "record.json field 'dls.recipe.state.blocks_[0].state.tfms_[0].state.subword_' is missing: "
            f"Tokenizer(mode={mode!r}) splits texts with the subword model that setup learned") + ".*damaged"):
        pipekit.load_learner(bad)


def test_a_subword_tokenizer_stripped_of_its_model_is_refused_at_load(exports, tmp_path):
    back = pipekit.load_learner(exports["bpe"])  # the file as exported loads and predicts
    assert back.predict(pl.read_csv(D.path("imdb_sample") / "texts.csv")["text"][0])[0] in ("negative", "positive")
    # only its units left (a fitted record's state), or nothing at all (as an unfitted record's)
    for state in ({"units_": "words"}, {}):
        bad = edited_copy(exports["bpe"], lambda r, s=state: _tokenizer_record(r).update(state=dict(s)),
                          tmp_path / "stripped.pipekit")
        with pytest.raises(ExportError, match=r"field 'dls\.recipe\.state\.blocks_\[0\]\.state\.tfms_\[0\]\.state\."
                                              r"subword_' is missing: Tokenizer\(mode='bpe'\).*the file is damaged"):
            pipekit.load_learner(bad)


def test_an_unfitted_subword_tokenizer_still_round_trips(tmp_path):
    # an unfitted tokenizer's record has an empty state: saved on its own, it loads unfitted
    back = pipekit.load(pipekit.save(Tokenizer("unigram", vocab_sz=100), tmp_path / "tok.pipekit"))
    assert isinstance(back, Tokenizer) and back.mode == "unigram" and not back.is_fitted


@pytest.mark.parametrize("kind", ["clf", "lm"])
def test_a_pad_token_other_than_the_vocab_xxpad_is_refused(exports, tmp_path, kind):
    learn = pipekit.load_learner(exports[kind])
    assert learn.dls.blocks[0].pad_idx == 1  # the file as exported loads: its model pads with xxpad
    bad = edited_copy(exports[kind], lambda r: r["arch"]["config"].update(pad_token=0), tmp_path / "pad.pipekit")
    with pytest.raises(ExportError, match=re.escape(
            "record.json field 'arch.config.pad_token' is 0, but the padding token of the vocabulary of field "
            "'dls.recipe.state.blocks_[0]' (TextBlock) has id 1; the file is damaged")):
        pipekit.load_learner(bad)


def test_a_tokenizer_named_by_path_is_refused_without_looking_the_path_up(exports, tmp_path, monkeypatch):
    def named(path: str):
        def edit(r: dict) -> None:
            t = _tokenizer_record(r)
            t["class"], t["params"] = "pipekit.text.HFTokenizer", {"tokenizer": path, "add_bos": True,
                                                                   "add_eos": False}
        return edit

    looked_up: list[str] = []
    real_is_file, real_stat = pathlib.Path.is_file, pathlib.Path.stat
    monkeypatch.setattr(pathlib.Path, "is_file", lambda p, *a, **k: looked_up.append(str(p)) or real_is_file(p, *a, **k))
    monkeypatch.setattr(pathlib.Path, "stat", lambda p, *a, **k: looked_up.append(str(p)) or real_stat(p, *a, **k))
    existing = tmp_path / "tokenizer.json"
    existing.write_text("{}")
    messages = []
    for target in (str(existing), str(tmp_path / "no-such-file.json")):
        bad = edited_copy(exports["clf"], named(target), tmp_path / "path.pipekit")
        looked_up.clear()
        with pytest.raises(ExportError) as caught:
            pipekit.load_learner(bad)
        assert target not in looked_up
        messages.append(str(caught.value).replace(target, "<path>"))
    assert messages[0] == messages[1]
    assert "HFTokenizer holds its tokenizer as JSON data, not the path '<path>'" in messages[0]
