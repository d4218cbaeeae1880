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
