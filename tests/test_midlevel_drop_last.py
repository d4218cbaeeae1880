import polars as pl

import pipekit.datasets as D
from pipekit.data import TfmdLists
from pipekit.text import LMDataLoader, Numericalize, Tokenizer


def test_a_training_loader_alone_drops_its_last_partial_batch_unless_that_leaves_none():
    """With no validation split, drop_last=True is kept wherever the training loader still has a batch: a
    TfmdLists' items (8 imdb_sample labels) as a language model's windows of their texts' token ids."""
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(8)
    kw = dict(drop_last=True, seed=0, device="cpu", num_workers=0)
    for n, kept in ((7, False), (8, True)):  # bs=8: 7 items would give no batch; 8 fill one
        dl = TfmdLists(df["label"].to_list()[:n], []).dataloaders(bs=8, **kw).train
        assert (dl.drop_last, len(dl), [len(b[0]) for b in dl]) == (kept, 1, [n])
    texts = TfmdLists(df["text"].to_list(), [Tokenizer(), Numericalize()])  # 8 texts, bs=8 streams
    lm = texts.dataloaders(bs=8, seq_len=16, dl_type=LMDataLoader, **kw).train
    assert lm.drop_last and len(lm) == lm.stream_len // 16 and [x.shape[1] for x, _ in lm] == [16] * len(lm)


def test_a_language_model_loader_with_a_valid_split_drops_its_last_window_from_fewer_texts_than_bs():
    """A language model's batches are windows of ``bs`` streams cut from every text's token ids, not texts: 6
    imdb_sample texts to train on (2 to validate) fill bs=8 streams, and drop_last=True keeps full windows only."""
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(8)
    texts = TfmdLists(df["text"].to_list(), [Tokenizer(), Numericalize()], splits=[list(range(6)), [6, 7]])
    dls = texts.dataloaders(bs=8, seq_len=16, dl_type=LMDataLoader, drop_last=True, seed=0, device="cpu",
                            num_workers=0)
    lm = dls.train
    assert len(texts.train) == 6 < lm.bs == 8 and lm.drop_last
    assert len(lm) == lm.stream_len // 16 > 0
    assert [tuple(x.shape) for x, _ in lm] == [(8, 16)] * len(lm)
    assert len(dls.valid) and all(x.shape[0] == 8 for x, _ in dls.valid)
