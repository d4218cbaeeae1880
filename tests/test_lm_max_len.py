"""``max_len`` cuts classifier texts only: with ``is_lm=True`` (one stream of ``seq_len`` windows) it would do
nothing, so ``TextBlock`` and the ``TextDataLoaders`` factories refuse it, naming it; the default (None) passes, and
a classifier still keeps each text's last ``max_len`` tokens. Real imdb_sample reviews."""

from __future__ import annotations

import polars as pl
import pytest

from pipekit.core.errors import ParameterError
from pipekit.data import ColReader, DataBlock, RandomSplitter
from pipekit.datasets import path
from pipekit.text import TextBlock, TextDataLoaders

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def df() -> pl.DataFrame:
    return pl.read_csv(path("imdb_sample") / "texts.csv")[::10]


def test_text_block_refuses_max_len_for_language_models():
    for make in (lambda: TextBlock(is_lm=True, max_len=20, cache_dir=False),
                 lambda: TextBlock.from_df("text", is_lm=True, max_len=20, cache_dir=False),
                 lambda: TextBlock.from_folder(is_lm=True, max_len=20, cache_dir=False)):
        with pytest.raises(ParameterError, match="max_len=20 cuts classifier texts only"):
            make()
    assert TextBlock.from_df("text", is_lm=True, max_len=None, cache_dir=False).max_len is None
    assert TextBlock.from_df("text", max_len=20, cache_dir=False).max_len == 20


def test_factories_refuse_max_len_for_language_models(df, tmp_path):
    kw = dict(text_col="text", is_lm=True, bs=8, seq_len=16, seed=0, cache_dir=False)
    with pytest.raises(ParameterError, match="max_len=20 cuts classifier texts only"):
        TextDataLoaders.from_df(df, max_len=20, **kw)
    csv = tmp_path / "texts.csv"
    df.write_csv(csv)
    with pytest.raises(ParameterError, match="max_len=20 cuts classifier texts only"):
        TextDataLoaders.from_csv(tmp_path, "texts.csv", max_len=20, **kw)
    for i, text in enumerate(df["text"][:6]):
        (tmp_path / "train" / "pos").mkdir(parents=True, exist_ok=True)
        (tmp_path / "train" / "pos" / f"{i}.txt").write_text(text)
    with pytest.raises(ParameterError, match="max_len=20 cuts classifier texts only"):
        TextDataLoaders.from_folder(tmp_path, valid_pct=0.2, is_lm=True, max_len=20, seed=0, cache_dir=False)
    dls = TextDataLoaders.from_df(df, **kw)  # max_len left at None
    assert dls.one_batch()[0].shape == (8, 16)


def test_classifier_still_cuts_texts(df):
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", max_len=20, bs=8, seed=0, cache_dir=False)
    x = dls.one_batch()[0]
    assert x.shape[1] == 20  # reviews are longer than 20 tokens: each keeps its last 20
    full = DataBlock(blocks=TextBlock.from_df("text", cache_dir=False), get_x=ColReader("text"),
                     splitter=RandomSplitter(0.1, seed=0)).dataloaders(df, bs=8, seed=0)
    assert full.one_batch()[0].shape[1] > 20
