"""TextBlock through DataBlock on real data: classifier and language-model loaders, cache, bad input."""
from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch

import pipekit.datasets as D
from pipekit.data import (ArrayDataset, CategoryBlock, ColReader, ColSplitter, DataBlock, PipelineStepError,
                          RandomSplitter, get_text_files, parent_label)
from pipekit.core.errors import DataError, ParameterError
from pipekit.data.cache import CacheRebuildWarning
from pipekit.data.splitters import GrandparentSplitter
from pipekit.text import SPECIAL_TOKENS, LMDataLoader, SortedDataLoader, TextBlock, TextStore


@pytest.fixture(scope="module")
def imdb() -> pl.DataFrame:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv")


def clas_block(tmp, **kw) -> DataBlock:
    return DataBlock(blocks=(TextBlock.from_df("text", cache_dir=tmp, **kw), CategoryBlock), get_x=ColReader("text"),
                     get_y=ColReader("label"), splitter=ColSplitter("is_valid"))


def test_classifier_dataloaders(imdb, tmp_path):
    dls = clas_block(tmp_path).dataloaders(imdb, bs=64, seed=0, num_workers=0)
    assert dls.vocab[1] == ["negative", "positive"] and dls.vocab[0] == dls.blocks[0].vocab  # fastai: tokens, classes
    tb = dls.blocks[0]
    vocab = tb.vocab
    assert vocab[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS and len(vocab) % 8 == 0 and tb.pad_idx == 1
    assert len(dls.train.dataset) == 800 and len(dls.valid.dataset) == 200
    x, y = dls.one_batch()
    assert x.dtype == torch.int64 and x.shape[0] == 64 and y.shape == (64,)
    lens = (x != 1).sum(1)
    # pad first: every row ends with real tokens, and starts with xxbos right after its padding
    assert (x[:, -1] != 1).all()
    assert all(int(x[r, x.shape[1] - lens[r]]) == 2 for r in range(64))
    assert x.shape[1] == int(lens.max())
    # sorting keeps padding far below what random batches of the same size would have
    store = dls.train.dataset.stores[0]
    all_lens = store.lengths[dls.train.dataset.idxs]
    rng = np.random.default_rng(0)
    rand_pad = np.mean([1 - all_lens[b].sum() / (all_lens[b].max() * len(b))
                        for b in np.array_split(rng.permutation(800), 12)])
    assert dls.train.padding_fraction() < rand_pad / 2
    # validation: sorted by length, longest first
    vl = dls.valid.lengths
    order = np.concatenate(dls.valid.batch_plan(0))
    assert (np.diff(vl[order]) <= 0).all()
    # decoding gives the text back
    text, label = dls.valid.decode_batch(dls.valid.one_batch(), max_n=1)[0]
    assert label in ("negative", "positive") and len(text) > 100


def test_train_batches_shuffle_deterministically(imdb, tmp_path):
    dls = clas_block(tmp_path).dataloaders(imdb, bs=32, seed=3, num_workers=0)
    p0, p0b, p1 = dls.train.batch_plan(0), dls.train.batch_plan(0), dls.train.batch_plan(1)
    assert all(np.array_equal(a, b) for a, b in zip(p0, p0b))
    assert not all(np.array_equal(a, b) for a, b in zip(p0, p1))
    flat = np.sort(np.concatenate(p0))
    assert len(flat) == 800 and len(np.unique(flat)) == 800  # drop_last: 25 full batches cover all items
    lens = dls.train.lengths
    assert lens[p0[0]].max() == lens.max()  # the longest batch first


def test_cache_hit_miss_and_corruption(imdb, tmp_path):
    db = clas_block(tmp_path)
    dls1 = db.dataloaders(imdb, bs=16, seed=0, num_workers=0)
    assert dls1.blocks[0].from_cache_ is False
    dls2 = clas_block(tmp_path).dataloaders(imdb, bs=16, seed=0, num_workers=0)
    assert dls2.blocks[0].from_cache_ is True
    s1, s2 = dls1.train.dataset.stores[0], dls2.train.dataset.stores[0]
    assert s1.ids.equals(s2.ids) and dls1.blocks[0].vocab == dls2.blocks[0].vocab
    # another vocabulary setting: the same tokens (the entry holds tokens), a vocabulary counted afresh
    dls3 = clas_block(tmp_path, min_freq=5).dataloaders(imdb, bs=16, seed=0, num_workers=0)
    assert dls3.blocks[0].from_cache_ is True and len(dls3.blocks[0].vocab) < len(dls1.blocks[0].vocab)
    # another tokenizer setting, another entry
    dls3b = clas_block(tmp_path, rules=False).dataloaders(imdb, bs=16, seed=0, num_workers=0)
    assert dls3b.blocks[0].from_cache_ is False
    # changed texts, another entry
    dls4 = clas_block(tmp_path).dataloaders(imdb.with_columns(pl.col("text") + " extra"), bs=16, seed=0,
                                            num_workers=0)
    assert dls4.blocks[0].from_cache_ is False
    # entries live where the shared cache helper puts text caches: <cache_dir>/text/<key>
    assert {f.parent.parent for f in tmp_path.rglob("ids.arrow")} == {tmp_path / "text"}
    # a corrupt file is rebuilt, never trusted
    for f in tmp_path.rglob("ids.arrow"):
        f.write_bytes(b"garbage")
    with pytest.warns(CacheRebuildWarning, match="ids.arrow"):
        dls5 = clas_block(tmp_path).dataloaders(imdb, bs=16, seed=0, num_workers=0)
    assert dls5.blocks[0].from_cache_ is False
    assert dls5.train.dataset.stores[0].ids.equals(s1.ids)


def test_lm_loader_streams(imdb, tmp_path):
    db = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, seq_len=40, cache_dir=tmp_path),
                   get_x=ColReader("text"), splitter=RandomSplitter(0.1, seed=42))
    dls = db.dataloaders(imdb, bs=16, seed=0, num_workers=0)
    dl = dls.valid
    batches = list(dl)
    assert len(batches) == len(dl)
    x0, y0 = batches[0]
    assert x0.shape == (16, 40) and torch.equal(x0[:, 1:], y0[:, :-1])
    # row r of batch i+1 continues row r of batch i
    x1, _ = batches[1]
    assert torch.equal(x1[:, 0], y0[:, -1])
    stream = torch.cat([b[0] for b in batches], 1).cpu()  # the loaders' device may be a GPU
    store = dl.dataset.stores[0]
    total = int(store.lengths[dl.dataset.idxs].sum())
    assert stream.numel() == (total - 1) // 16 * 16
    assert torch.equal(stream.reshape(-1)[: 200], torch.from_numpy(store.stream(dl.dataset.idxs)[:200]).long())
    # training order changes per epoch, deterministically
    tr = dls.train
    a = tr.create_batch(tr.batch_plan(0)[0])[0]
    assert torch.equal(a, tr.create_batch(tr.batch_plan(0)[0])[0])
    assert not torch.equal(a, tr.create_batch(tr.batch_plan(1)[0])[0])
    assert dls.blocks[0].is_lm
    text_x, text_y = dl.decode_batch(batches[0], max_n=1)[0]
    assert isinstance(text_x, str) and len(text_x) > 20


def test_text_longer_than_any_batch(tmp_path):
    ids = pa.array([list(range(2, 1002)), [2, 5, 6]], pa.list_(pa.int32()))
    dl = LMDataLoader(ArrayDataset([TextStore(ids)]), bs=4, seq_len=50, device="cpu", num_workers=0)
    xs = [b[0] for b in dl]
    assert len(xs) == len(dl) == 5 and xs[0].shape == (4, 50)
    with pytest.raises(DataError, match="lower bs"):
        LMDataLoader(ArrayDataset([TextStore(pa.array([[2, 3, 4]], pa.list_(pa.int32())))]), bs=4, device="cpu")
    # the classifier keeps the end of a text longer than max_len
    store = TextStore(ids, pad_idx=1, max_len=10)
    batch = store.gather(np.array([0, 1]))
    assert batch.shape == (2, 10) and batch[0].tolist() == list(range(992, 1002))
    assert batch[1].tolist() == [1] * 7 + [2, 5, 6]


def test_reuse_vocab_test_dl_and_unknowns(imdb, tmp_path):
    lm = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, cache_dir=tmp_path), get_x=ColReader("text"),
                   splitter=RandomSplitter(0.1, seed=1)).dataloaders(imdb, bs=16, seed=0, num_workers=0)
    lm_vocab = lm.blocks[0].vocab
    dls = clas_block(tmp_path, vocab=lm_vocab).dataloaders(imdb, bs=16, seed=0, num_workers=0)
    assert dls.blocks[0].vocab == lm_vocab
    tdl = dls.test_dl(pl.DataFrame({"text": ["Zxqwv blorfs the movie", ""]}))
    (x,) = tdl.one_batch()
    row = x[0][x[0] != 1].tolist()
    assert row[:4] == [2, 8, 0, 0] and lm_vocab[row[-1]] == "movie"
    assert x[1][x[1] != 1].tolist() == [2]  # an empty text is just xxbos


def test_a_path_given_as_a_new_item_is_read_by_a_model_trained_on_a_column(imdb, tmp_path):
    """A text model trained on a column of texts reads a ``Path`` given to predict or test_dl (it classified the
    file's name); a str is the text itself, a missing or non-UTF-8 file is refused by name."""
    from pathlib import Path

    from pipekit.text import AWD_LSTM, text_classifier_learner

    some = pl.concat([imdb.filter(~pl.col("is_valid")).head(100), imdb.filter(pl.col("is_valid")).head(20)])
    dls = clas_block(False).dataloaders(some, bs=16, seed=0, num_workers=0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=16, n_hid=32, n_layers=1), pretrained=False)
    reviews = imdb.filter(pl.col("is_valid"))["text"].to_list()[50:53]
    files = []
    for i, text in enumerate(reviews):
        files.append(tmp_path / f"review{i}.md")
        files[-1].write_text(text, encoding="utf-8")
    by_text = learn.get_preds(dl=dls.test_dl(reviews))[0]
    by_path = learn.get_preds(dl=dls.test_dl(files))[0]
    by_name = learn.get_preds(dl=dls.test_dl([str(f) for f in files]))[0]
    assert torch.equal(by_path, by_text) and not torch.allclose(by_name, by_text)
    # one text alone against the same text in a padded batch: equal up to float rounding (other kernel blocking)
    assert torch.allclose(learn.predict(files[0])[2], by_text[0], atol=1e-6)
    assert torch.equal(learn.predict(files[0])[2], learn.predict(reviews[0])[2])
    with pytest.raises(DataError, match=r"missing.md: no such file; give an existing text file, or the text"):
        learn.predict(Path(tmp_path / "missing.md"))
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt: not valid utf-8 at byte 3"):
        learn.predict(tmp_path / "latin1.txt")


def test_unseen_label_and_null_text(imdb, tmp_path):
    bad = imdb.with_columns(pl.when(pl.col("is_valid") & (pl.int_range(pl.len()) % 50 == 0))
                            .then(pl.lit("neutral")).otherwise(pl.col("label")).alias("label"))
    with pytest.raises(PipelineStepError, match="neutral.*not in the training labels"):
        clas_block(tmp_path).dataloaders(bad, bs=16, seed=0)
    nulls = imdb.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(None).otherwise(pl.col("text")).alias("text"))
    with pytest.raises((PipelineStepError, ValueError), match="7"):
        clas_block(tmp_path).dataloaders(nulls, bs=16, seed=0)


def test_several_text_columns(tmp_path):
    df = pl.DataFrame({"title": ["Great", "Awful"] * 8, "body": ["loved it", "hated it"] * 8,
                       "label": ["pos", "neg"] * 8, "is_valid": [False] * 12 + [True] * 4})
    db = DataBlock(blocks=(TextBlock.from_df(["title", "body"], min_freq=1, cache_dir=False), CategoryBlock),
                   get_x=ColReader(["title", "body"]), get_y=ColReader("label"), splitter=ColSplitter("is_valid"))
    dls = db.dataloaders(df, bs=4, seed=0, num_workers=0)
    v = dls.blocks[0].vocab
    x = dls.train.dataset.stores[0].item(0).tolist()
    assert [v[i] for i in x] == ["xxbos", "xxfld", "1", "xxmaj", "great", "xxfld", "2", "loved", "it"]


def test_several_text_columns_decode_with_their_field_markers(imdb):
    from pipekit.text import SubwordTokenizer, Tokenizer

    # the label and the review of imdb_sample as two text columns: "xxfld 1 negative xxfld 2 Un-bleeping..."
    rows = imdb.head(80)
    texts = TextBlock.from_df(["label", "text"], cache_dir=False).texts(rows.select(pl.struct("label", "text"))
                                                                         .to_series())
    tok = Tokenizer()
    tt = tok(texts)
    decoded = tok.decode(tt)
    # each field keeps its numbered marker, so the fields (and a line break inside one) stay apart, and the
    # decoded text tokenizes back to the same tokens
    assert decoded[0].startswith("xxfld 1 negative xxfld 2 Un - bleeping - believable! Meg Ryan")
    assert [tok(d) for d in decoded] == list(tt)
    assert tok.decode(["xxbos", "xxfld", "1", "xxmaj", "title", "xxfld", "2", "line", "\n", "next"]) == \
        "xxfld 1 Title xxfld 2 line\nnext"
    sp = SubwordTokenizer(vocab_sz=2000)
    sp.setup(texts)
    assert sp.decode(sp(texts)) == [" ".join(t.split()) for t in texts.to_list()]


def test_from_folder_and_bad_file(tmp_path):
    for split in ("train", "valid"):
        for label, words in (("pos", "wonderful lovely"), ("neg", "awful boring")):
            d = tmp_path / split / label
            d.mkdir(parents=True)
            for i in range(3):
                (d / f"{i}.txt").write_text(f"A {words} film number {i}.")
    db = DataBlock(blocks=(TextBlock.from_folder(tmp_path, min_freq=1, cache_dir=False), CategoryBlock),
                   get_items=get_text_files, get_y=parent_label, splitter=GrandparentSplitter())
    dls = db.dataloaders(tmp_path, bs=2, seed=0, num_workers=0)
    assert dls.vocab[1] == ["neg", "pos"] and "wonderful" in dls.blocks[0].vocab
    (tmp_path / "train" / "pos" / "broken.txt").write_bytes(b"caf\xe9 ok")
    with pytest.raises(PipelineStepError, match=r"broken\.txt: not valid utf-8 at byte 3"):
        db.dataloaders(tmp_path, bs=2, seed=0)
    db_replace = DataBlock(blocks=(TextBlock.from_folder(tmp_path, min_freq=1, errors="replace", cache_dir=False),
                                   CategoryBlock), get_items=get_text_files, get_y=parent_label,
                           splitter=GrandparentSplitter())
    assert len(db_replace.dataloaders(tmp_path, bs=2, seed=0, num_workers=0).train.dataset) == 7


def test_block_parameter_validation():
    with pytest.raises(ParameterError, match="seq_len"):
        TextBlock.from_df("text", seq_len=1)
    with pytest.raises(ParameterError, match="errors="):
        TextBlock.from_folder(errors="skip")
    with pytest.raises(ParameterError, match="text_cols"):
        TextBlock.from_df([])
    with pytest.raises(ParameterError, match="Tokenizer"):
        TextBlock.from_df("text", tok="spacy")
    with pytest.raises(ParameterError, match="missing the special tokens"):
        TextBlock.from_df("text", vocab=["the", "a"])
    with pytest.raises(ParameterError, match="cache_dir=3"):
        TextBlock.from_df("text", cache_dir=3)
    with pytest.raises(ParameterError, match="chunk_mult"):
        SortedDataLoader(ArrayDataset([TextStore(pa.array([[2]], pa.list_(pa.int32())))]), chunk_mult=0)


def test_from_df_a_continuous_label_asks_for_regression(imdb):
    from pipekit.data import RegressionBlock
    from pipekit.text import TextDataLoaders

    df = imdb.head(60).with_columns((pl.col("text").str.len_chars().log()).alias("log_len"),
                                    (pl.col("label") == "positive").cast(pl.Float64).alias("pos"))
    with pytest.raises(DataError, match=r"label_col='log_len' holds numbers with fractions \(e.g. [\d.]+, 60 of 60\): "
                                        r"the target looks continuous; pass y_block=RegressionBlock"):
        TextDataLoaders.from_df(df, text_col="text", label_col="log_len", bs=8, seed=0, cache_dir=False)
    reg = TextDataLoaders.from_df(df, text_col="text", label_col="log_len", y_block=RegressionBlock, bs=8, seed=0,
                                  cache_dir=False)
    assert reg.loss_kind == "mse" and reg.one_batch()[1].dtype == torch.float32
    # whole numbers held as floats (0.0 / 1.0) are classes, as before
    clas = TextDataLoaders.from_df(df, text_col="text", label_col="pos", bs=8, seed=0, cache_dir=False)
    assert len(clas.vocab) == 2


def test_from_folder_takes_encoding_and_errors(tmp_path):
    """``TextDataLoaders.from_folder`` reads a latin-1 folder when told so, as its own error advises."""
    from pipekit.text import TextDataLoaders

    for split in ("train", "valid"):
        for label in ("pos", "neg"):
            d = tmp_path / split / label
            d.mkdir(parents=True)
            for i in range(3):
                (d / f"{i}.txt").write_text(f"a {label} film number {i}")
    (tmp_path / "train" / "pos" / "latin1.txt").write_bytes("tr\u00e8s bon caf\u00e9".encode("latin-1"))
    with pytest.raises(PipelineStepError, match=r"latin1\.txt: not valid utf-8 at byte 2.*encoding="):
        TextDataLoaders.from_folder(tmp_path, bs=2, cache_dir=False, min_freq=1)
    dls = TextDataLoaders.from_folder(tmp_path, bs=2, cache_dir=False, min_freq=1, encoding="latin-1")
    assert "caf\u00e9" in dls.blocks[0].vocab and "tr\u00e8s" in dls.blocks[0].vocab
    dls = TextDataLoaders.from_folder(tmp_path, bs=2, cache_dir=False, min_freq=1, errors="replace")
    assert "\ufffd" in dls.blocks[0].vocab and "caf" in dls.blocks[0].vocab
    with pytest.raises(ParameterError, match="errors"):
        TextDataLoaders.from_folder(tmp_path, bs=2, cache_dir=False, errors="skip")


def test_null_texts_name_the_column_and_rows(imdb):
    from pipekit.text import TextDataLoaders

    df = imdb.head(40).rename({"text": "review text"}).with_columns(
        pl.when(pl.int_range(pl.len()) % 10 == 3).then(None).otherwise(pl.col("review text")).alias("review text"))
    with pytest.raises(PipelineStepError, match=r"ColReader\(cols='review text'\)\) has 4 null value\(s\) at rows "
                                                r"\[3, 13, 23, 33\] \(positions in the items"):
        TextDataLoaders.from_df(df, text_col="review text", label_col="label", bs=4, cache_dir=False)
    # several text columns: a null field is an empty one, a row with no text at all is refused
    two = pl.DataFrame({"title": ["Great", None, None, "Dull"] * 5, "body": ["loved it", "fine", None, None] * 5,
                        "label": ["pos", "pos", "neg", "neg"] * 5})
    with pytest.raises(PipelineStepError, match=r"5 row\(s\) with no text in any of the columns \['title', 'body'\], "
                                                r"at rows \[2, 6, 10, 14, 18\]"):
        TextDataLoaders.from_df(two, text_col=["title", "body"], label_col="label", bs=2, cache_dir=False)
    ok = TextDataLoaders.from_df(two.filter(pl.int_range(pl.len()) % 4 != 2), text_col=["title", "body"],
                                 label_col="label", bs=2, cache_dir=False, min_freq=1, seed=0)
    assert len(ok.train.dataset) + len(ok.valid.dataset) == 15


def test_lm_validation_too_small_names_it_and_val_bs(imdb):
    from pipekit.text import TextDataLoaders

    base = imdb.head(200).with_columns(pl.lit(False).alias("v"))
    tiny = pl.DataFrame({"label": ["positive"] * 2, "text": ["ok", "fine"], "is_valid": [True] * 2, "v": [True] * 2})
    df = pl.concat([base, tiny])
    with pytest.raises(DataError, match=r"the validation set \(2 items, bs=64\): LMDataLoader: .* pass val_bs="):
        TextDataLoaders.from_df(df, text_col="text", is_lm=True, valid_col="v", bs=64, cache_dir=False)
    dls = TextDataLoaders.from_df(df, text_col="text", is_lm=True, valid_col="v", bs=64, val_bs=1, cache_dir=False)
    assert dls.valid.bs == 1 and dls.train.bs == 64 and len(dls.train) > 1


def test_lm_show_batch_draws_text_and_shifted_target(imdb, tmp_path, monkeypatch):
    """fastai's two columns: the window (text) and its target moved on by one token (text_)."""
    import pipekit.data.plotting as plotting
    from pipekit.text import TextDataLoaders

    dls = TextDataLoaders.from_df(imdb.tail(220), text_col="text", is_lm=True, valid_col="is_valid", bs=4,
                                  seq_len=12, seed=0, cache_dir=False)
    out = dls.show_batch(max_n=3, path=tmp_path / "lm.png")
    assert out is not None and out.stat().st_size > 0
    shown = []
    monkeypatch.setattr(plotting, "savefig_or_show", lambda fig, path=None, name="": shown.append(fig))
    dls.show_batch(max_n=3)
    fig = shown[0]
    x, y = dls.one_batch()
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert [ax.get_title() for ax in fig.axes] == ["text", "text_"] + [""] * 4
    drawn = [" ".join(ax.texts[0].get_text().split()) for ax in fig.axes]  # wrapped to the cell's width
    texts = dls.train.decode_batch((x, y), max_n=3)
    assert drawn == [" ".join(t.split()) for pair in texts for t in pair]
    assert all(a != b for a, b in texts)
    with pytest.raises(ParameterError, match="2 columns"):
        dls.show_batch(max_n=2, ncols=3)


def test_a_block_given_the_language_models_vocab_shows_it_cut_short_on_imdb():
    from pipekit.text import TextBlock, TextDataLoaders

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    vocab = TextDataLoaders.from_df(df, text_col="text", is_lm=True, bs=16, seed=0).vocab
    dsets = DataBlock(blocks=(TextBlock.from_df("text", vocab=vocab), CategoryBlock), get_x=ColReader("text"),
                      get_y=ColReader("label"), splitter=ColSplitter("is_valid")).datasets(df)
    shown = repr(dsets)
    assert len(vocab) > 5000 and len(shown) < 600, shown
    assert f"{vocab[:8]!r}"[:-1] in shown and f"... ({len(vocab)} values)]" in shown
    assert repr(CategoryBlock(vocab=["negative", "positive"])) == "CategoryBlock(vocab=['negative', 'positive'])"
