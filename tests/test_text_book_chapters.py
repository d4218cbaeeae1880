"""The book's chapters 1 and 10 on imdb_sample written out as folders: from_folder's path=, an encoder saved under
another learner's path, the classifier head's dropouts, folders= as a filter, coll_repr and defaults.text_proc_rules."""
from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.data import DataBlock, RandomSplitter, get_files, get_image_files, get_text_files
from pipekit.text import (AWD_LSTM, TextBlock, TextDataLoaders, Tokenizer, coll_repr, defaults,
                          language_model_learner, text_classifier_learner)
from pipekit.text.models import get_text_classifier

TINY = dict(emb_sz=16, n_hid=16, n_layers=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the test machine is shared: one thread avoids stalls


@pytest.fixture(scope="module")
def imdb_df() -> pl.DataFrame:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv")


@pytest.fixture(scope="module")
def imdb(imdb_df, tmp_path_factory) -> Path:
    """imdb_sample as the book's IMDB folders: train/ and test/, each with neg/ and pos/ (no unsup/)."""
    root = tmp_path_factory.mktemp("imdb")
    df = pl.concat([imdb_df.filter(~pl.col("is_valid")).head(80), imdb_df.filter(pl.col("is_valid")).head(20)])
    for i, (label, text, valid) in enumerate(df.select("label", "text", "is_valid").iter_rows()):
        folder = root / ("test" if valid else "train") / ("pos" if label == "positive" else "neg")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


def head_dropouts(learn) -> list[float]:
    return [m.p for m in learn.model[1].modules() if isinstance(m, torch.nn.Dropout)]


# ------------------------------------------------------------------ TextDataLoaders.from_folder(..., path=)
def test_from_folder_takes_the_path_learners_save_to(imdb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the default stays the working directory
    assert str(TextDataLoaders.from_folder(imdb, valid="test", cache_dir=False).path) == "."
    dls = TextDataLoaders.from_folder(imdb, valid="test", path=imdb, cache_dir=False, bs=16)
    assert dls.path == imdb and (len(dls.train_ds), len(dls.valid_ds)) == (80, 20)
    learn = text_classifier_learner(dls, AWD_LSTM, config=TINY)
    assert learn.path == imdb
    saved = learn.save("clas")
    assert Path(saved).parent == imdb / "models" and not (tmp_path / "models").exists()
    # another folder for the models than the texts'
    out = tmp_path / "out"
    assert TextDataLoaders.from_folder(imdb, valid="test", path=out, cache_dir=False).path == out
    # path= alone is the folder of the texts, as before (dls.path left at '.')
    alone = TextDataLoaders.from_folder(path=imdb, valid="test", cache_dir=False)
    assert str(alone.path) == "." and len(alone.train_ds) == 80


# ------------------------------------------------------------------ load_encoder from another learner's path
def test_an_encoder_saved_under_another_path_is_named_and_loads_by_its_full_path(imdb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # chapter 10: the language model on the DataBlock with path=path, the classifier on chapter 1's from_folder
    lm_path = tmp_path / "lm"
    dls_lm = DataBlock(blocks=TextBlock.from_folder(imdb, is_lm=True, cache_dir=False),
                       get_items=partial(get_text_files, folders=["train", "test", "unsup"]),
                       splitter=RandomSplitter(0.1, seed=0)).dataloaders(imdb, path=lm_path, bs=16, seq_len=40)
    lm = language_model_learner(dls_lm, AWD_LSTM, config=TINY)
    saved = lm.save_encoder("finetuned")
    assert saved == lm_path / "models" / "finetuned.pipekit"
    dls = TextDataLoaders.from_folder(imdb, valid="test", text_vocab=dls_lm.vocab, cache_dir=False, bs=16)
    learn = text_classifier_learner(dls, AWD_LSTM, config=TINY)
    with pytest.raises(FileNotFoundError) as e:
        learn.load_encoder("finetuned")
    msg = str(e.value)
    # the absolute file it looked for, the learner's path, and the two ways to load one saved elsewhere
    assert str((tmp_path / "models" / "finetuned.pipekit").absolute()) in msg
    assert str(tmp_path.absolute()) in msg and "full path" in msg and "path=" in msg
    assert "learn.load_encoder(lm.path/'models'/'finetuned')" in msg
    for name in (lm_path / "models" / "finetuned", lm_path / "models" / "finetuned.pipekit",
                 str(lm_path / "models" / "finetuned")):
        fresh = text_classifier_learner(dls, AWD_LSTM, config=TINY)
        fresh.load_encoder(name)
        assert torch.equal(fresh.encoder.rnns[0].lstm.weight_hh_l0, lm.encoder.rnns[0].lstm.weight_hh_l0), name
    # a name relative to the working folder is read under learn.path / model_dir, as learn.load reads it: the file
    # the working folder holds at that name is named, not loaded
    for name in (Path("lm/models/finetuned"), "lm/models/finetuned.pipekit"):
        with pytest.raises(FileNotFoundError, match=re.escape(f"An encoder file is at {saved}")):
            text_classifier_learner(dls, AWD_LSTM, config=TINY).load_encoder(name)
    # the classifier built with the language model's path finds it by name, as in fastai
    shared = TextDataLoaders.from_folder(imdb, valid="test", text_vocab=dls_lm.vocab, path=lm_path, cache_dir=False)
    clas = text_classifier_learner(shared, AWD_LSTM, config=TINY)
    clas.load_encoder("finetuned")
    assert torch.equal(clas.encoder.rnns[0].lstm.weight_hh_l0, lm.encoder.rnns[0].lstm.weight_hh_l0)
    # a folder of the encoder's name in the working directory is no encoder file: the model directory is read
    (tmp_path / "finetuned").mkdir()
    text_classifier_learner(shared, AWD_LSTM, config=TINY).load_encoder("finetuned")


# ------------------------------------------------------------------ the classifier head's dropouts
def test_drop_mult_scales_output_p_not_the_heads_ps(imdb_df):
    # fastai 2.8.12: [output_p * drop_mult] + ps, ps 0.1 each by default
    dls = TextDataLoaders.from_df(imdb_df.head(60), text_col="text", label_col="label", bs=16, seed=0,
                                  cache_dir=False)
    for drop_mult, ps, want in ((0.5, None, [0.2, 0.1]), (1.0, None, [0.4, 0.1]), (0.5, [0.3], [0.2, 0.3]),
                                (0.3, [0.25, 0.05], [0.12, 0.25, 0.05])):
        kw = {} if ps is None else dict(ps=ps, lin_ftrs=[50] * len(ps))
        learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=drop_mult, config=TINY, **kw)
        assert head_dropouts(learn) == pytest.approx(want), (drop_mult, ps)
        # the encoder's own dropouts are still scaled
        assert learn.encoder.input_dp.p == pytest.approx(0.4 * drop_mult)
    from pipekit.text.models import AWD_LSTM as Enc

    head = get_text_classifier(Enc(30, 8, 8, 1), 2, ps=[0.3], output_p=0.4, drop_mult=0.5)[1]
    assert [m.p for m in head.modules() if isinstance(m, torch.nn.Dropout)] == pytest.approx([0.2, 0.3])


# ------------------------------------------------------------------ folders= is a filter
def test_folders_is_a_filter_on_the_folders_that_are_there(imdb):
    # chapter 10's get_imdb lists 'unsup', which imdb_sample has not
    both = get_text_files(imdb, folders=["train", "test"])
    assert len(both) == 100
    assert get_text_files(imdb, folders=["train", "test", "unsup"]) == both
    assert get_files(imdb, extensions=[".txt"], folders=["unsup", "train"]) == get_text_files(imdb, folders="train")
    assert len(get_text_files(imdb, folders="train")) == 80
    # one suffix as a str, as fastai reads it (it was read letter by letter, and matched nothing)
    assert get_files(imdb, extensions=".txt", folders="train") == get_text_files(imdb, folders="train")
    assert get_image_files(imdb, folders=["train", "unsup"]) == []
    # nothing there at all is still an error naming the folder, the folders asked for and those there
    with pytest.raises(FileNotFoundError, match=r"none of folders=\['unsup', 'valid'\] is a folder in .*imdb.*"
                                                r"its folders: \[.*'test', 'train'\]"):
        get_text_files(imdb, folders=["unsup", "valid"])


# ------------------------------------------------------------------ coll_repr and defaults.text_proc_rules
def test_coll_repr_is_fastcores():
    assert coll_repr(["a", "b"]) == "['a', 'b']"
    assert coll_repr(list("abcdefg"), 10) == "['a', 'b', 'c', 'd', 'e', 'f', 'g']"
    assert coll_repr(list("abcdefgh"), 3) == "(#8) ['a', 'b', 'c'...]"
    assert coll_repr(range(12), 31) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]"
    assert coll_repr([]) == "[]" and coll_repr(iter([1, 2])) == "[1, 2]"
    assert coll_repr(list(range(300))).startswith("(#300) [0, 1, 2,") and coll_repr(list(range(300))).endswith(
        "248, 249...]")


def test_coll_repr_of_the_books_tokens(imdb_df):
    txt = imdb_df["text"][0]
    toks = Tokenizer()(txt)
    shown = coll_repr(toks, 31)
    assert shown.startswith(f"(#{len(toks)}) ['xxbos', ") and shown.endswith("...]")
    assert shown.count(", ") == 30


def test_text_proc_rules_in_turn_give_the_tokenizers_tokens(imdb_df):
    names = [f.__name__ for f in defaults.text_proc_rules]
    assert names == ["fix_html", "replace_wrep", "split_pieces", "replace_all_caps", "replace_maj", "lowercase",
                     "replace_rep"]
    assert defaults.text_spec_tok[:2] == ["xxunk", "xxpad"]
    tok = Tokenizer()
    edge = ["word " * 111 + "then 1000 people", "no no I", "the the the THE end end end end. Hello hello\n\nNOOOOO",
            "Soooo GOOOOD, it's AMAZING!!!!", "a<br />b &amp; c &eacute; #39;", "word word\nword word word", "aaa.bbb",
            "x\t\tx\tx", "", "&copy;   Fast.ai www.fast.ai/INDEX", "I don't know,it's McDonald's"]
    for text in edge + imdb_df["text"].to_list():
        out = text
        for rule in defaults.text_proc_rules:
            out = rule(out)
        assert re.findall(r"\n+|\S+", out) == tok(text), text[:80]


def test_tfmdlists_show_prints_an_item_decoded(imdb_df, capsys):
    """Chapter 11's ``tls.show(t)``: the numericalized review printed back as its text's tokens."""
    from pipekit.data import TfmdLists
    from pipekit.text import Numericalize

    texts = imdb_df["text"].to_list()[:60]
    tls = TfmdLists(texts, [Tokenizer(), Numericalize(min_freq=1)], splits=[list(range(50)), list(range(50, 60))])
    t = tls[0]
    assert isinstance(t, torch.Tensor) and t.dtype == torch.long
    assert tls.show(t) is None  # printed once, as fastai's: nothing returned for a notebook to show again
    shown = capsys.readouterr().out.strip()
    # the text the tokens make (the case and repeat markers undone), word for word the review's
    assert shown == tls.decode(t) and shown.startswith(texts[0][:2])
    assert re.findall(r"[a-z]+", shown.lower())[:40] == re.findall(r"[a-z]+", texts[0].lower())[:40]
    # a label is printed as it is
    from pipekit.data import Categorize

    labels = TfmdLists(imdb_df["label"].to_list()[:10], [Categorize()])
    assert labels.show(labels[0]) is None and capsys.readouterr().out.strip() == imdb_df["label"][0]
