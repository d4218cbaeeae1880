"""The on-disk caches as a user lives with them: a seedless random split reuses the cached tokens, a cache folder that
cannot be written is only a warning, and ``pipekit.clear_cache`` / ``pipekit cache info|clear`` show and remove them."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import pipekit
import pipekit.datasets as D
from pipekit.cli import main, megabytes
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, ColReader, DataBlock, RandomSplitter, get_image_files
from pipekit.data.cache import CacheWriteWarning, cache_usage
from pipekit.data.external import pipekit_cache_dir
from pipekit.text import TextBlock, TextDataLoaders, Tokenizer
from pipekit.vision import build_image_store


@pytest.fixture(scope="module")
def imdb() -> pl.DataFrame:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv").head(300)


@pytest.fixture
def tokenize_calls(monkeypatch) -> list[int]:
    """How many texts the tokenizer was asked to tokenize, call by call."""
    calls: list[int] = []
    encode_texts = Tokenizer.encode_texts

    def counted(self, texts):
        out = encode_texts(self, texts)
        calls.append(len(out))
        return out

    monkeypatch.setattr(Tokenizer, "encode_texts", counted)
    return calls


def lm_dls(imdb: pl.DataFrame, cache_dir=None):
    """The book's chapter 10 language-model DataBlock: a random split with no seed."""
    return DataBlock(blocks=TextBlock.from_df("text", is_lm=True, cache_dir=cache_dir), get_x=ColReader("text"),
                     splitter=RandomSplitter(0.1)).dataloaders(imdb, bs=16, seq_len=36)


def clas_dls(imdb: pl.DataFrame, cache_dir=None):
    """``TextDataLoaders.from_df`` with ``valid_pct`` and no seed, as the book calls it."""
    return TextDataLoaders.from_df(imdb, text_col="text", label_col="label", valid_pct=0.2, bs=16,
                                   cache_dir=cache_dir)


def assert_as_built_without_a_cache(dls, imdb: pl.DataFrame, is_lm: bool) -> None:
    """The vocabulary and ids of ``dls`` are those of a block that tokenizes the same split afresh."""
    train_idx = dls.train.dataset.idxs
    fresh = TextBlock.from_df("text", is_lm=is_lm, cache_dir=False)
    store = fresh.setup(imdb["text"], train_idx)
    assert dls.blocks[0].vocab == fresh.vocab
    assert dls.train.dataset.stores[0].ids.equals(store.ids)


@pytest.mark.parametrize("build, is_lm", [(lm_dls, True), (clas_dls, False)], ids=["lm_datablock", "from_df"])
def test_unseeded_random_splits_tokenize_once_and_share_one_cache_entry(imdb, tmp_path, tokenize_calls, build,
                                                                        is_lm):
    text_cache = tmp_path / "cache" / "text"  # where PIPEKIT_CACHE (set per test) keeps tokens
    first = build(imdb)
    assert first.blocks[0].from_cache_ is False and tokenize_calls == [len(imdb)]
    size = cache_usage(text_cache)
    assert size[0] > 0 and size[1] == 1
    second = build(imdb)
    # another split: the vocabulary is learned again on its training rows ...
    assert not np.array_equal(np.sort(first.train.dataset.idxs), np.sort(second.train.dataset.idxs))
    assert first.blocks[0].vocab != second.blocks[0].vocab
    # ... from the cached tokens: nothing tokenized, nothing added to the cache
    assert second.blocks[0].from_cache_ is True and tokenize_calls == [len(imdb)]
    assert cache_usage(text_cache) == size
    for dls in (first, second):
        assert_as_built_without_a_cache(dls, imdb, is_lm)


def test_the_classifier_reads_the_language_models_tokens(imdb, tmp_path, tokenize_calls):
    """Chapter 10: a language model, then a classifier on its vocab (and other vocab settings) tokenize once."""
    dls_lm = lm_dls(imdb)
    dls_clas = DataBlock(blocks=(TextBlock.from_df("text", vocab=dls_lm.vocab, min_freq=1, max_vocab=500),
                                 CategoryBlock), get_x=ColReader("text"), get_y=ColReader("label"),
                         splitter=RandomSplitter(0.2, seed=1)).dataloaders(imdb, bs=16)
    assert dls_clas.blocks[0].from_cache_ is True and tokenize_calls == [len(imdb)]
    assert cache_usage(tmp_path / "cache" / "text")[1] == 1
    fresh = TextBlock.from_df("text", vocab=dls_lm.vocab, min_freq=1, max_vocab=500, cache_dir=False)
    store = fresh.setup(imdb["text"], dls_clas.train.dataset.idxs)
    assert dls_clas.vocab != dls_clas.blocks[0].vocab and dls_clas.blocks[0].vocab == fresh.vocab
    assert dls_clas.train.dataset.stores[0].ids.equals(store.ids)


def test_a_subword_model_is_cached_per_split(imdb, tmp_path):
    """A tokenizer that learns from the training texts is the exception: its tokens depend on the split."""
    texts = imdb["text"].head(60)

    def block():
        return TextBlock(Tokenizer("unigram", vocab_sz=300), cache_dir=tmp_path)

    first = block()
    first.setup(texts, np.arange(40))
    same, other = block(), block()
    same.setup(texts, np.arange(40))
    other.setup(texts, np.arange(20, 60))
    assert same.from_cache_ is True and other.from_cache_ is False
    assert cache_usage(tmp_path / "text")[1] == 2


def test_a_tokenizer_class_of_the_users_is_never_served_cached_tokens(imdb, tmp_path):
    class Upper(Tokenizer):
        def encode_texts(self, texts):
            return super().encode_texts(pl.Series([t.upper() for t in texts]))

    texts = imdb["text"].head(60)
    plain = TextBlock(Tokenizer(rules=False), min_freq=1, cache_dir=tmp_path)
    plain.setup(texts, np.arange(40))
    upper = TextBlock(Upper(rules=False), min_freq=1, cache_dir=tmp_path)
    upper.setup(texts, np.arange(40))
    assert upper.from_cache_ is False and "THE" in upper.vocab and "the" not in upper.vocab
    assert cache_usage(tmp_path / "text")[1] == 1  # the user's tokens are not written either


def unwritable_cache(tmp_path: Path, where: str, monkeypatch) -> tuple[Path | None, Path]:
    """A cache that cannot be written: ``PIPEKIT_CACHE`` naming a file, or a ``cache_dir`` whose ``text`` is a file.
    Returns the ``cache_dir`` to give and the folder the warning names."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    if where == "PIPEKIT_CACHE":
        monkeypatch.setenv("PIPEKIT_CACHE", str(blocker))
        return None, blocker / "text"
    (blocker.parent / "mine").mkdir()
    (blocker.parent / "mine" / "text").write_text("a file")
    return blocker.parent / "mine", blocker.parent / "mine" / "text"


@pytest.mark.parametrize("where", ["PIPEKIT_CACHE", "cache_dir"])
def test_an_unwritable_token_cache_warns_once_and_gives_the_same_batches(imdb, tmp_path, monkeypatch, where):
    cache_dir, folder = unwritable_cache(tmp_path, where, monkeypatch)

    def build(cache):
        return TextDataLoaders.from_df(imdb, text_col="text", label_col="label", valid_pct=0.2, seed=0, bs=16,
                                       cache_dir=cache)

    with pytest.warns(CacheWriteWarning) as record:
        dls = build(cache_dir)
    said = [str(w.message) for w in record if issubclass(w.category, CacheWriteWarning)]
    assert len(said) == 1 and str(folder) in said[0]
    assert "PIPEKIT_CACHE=<a writable folder>" in said[0] and "cache_dir=False" in said[0]
    assert dls.blocks[0].from_cache_ is False
    ref = build(False)
    assert dls.blocks[0].vocab == ref.blocks[0].vocab
    for a, b in ((dls.valid.one_batch(), ref.valid.one_batch()), (dls.train.one_batch(), ref.train.one_batch())):
        assert all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a, b))
    with warnings.catch_warnings():  # said once: building again in the same session says nothing more
        warnings.simplefilter("error", CacheWriteWarning)
        build(cache_dir)


def fill_both_caches(imdb: pl.DataFrame) -> tuple[int, int]:
    """A token entry and an image pack in the default cache (``$PIPEKIT_CACHE``); their sizes in bytes."""
    TextBlock.from_df("text").setup(imdb["text"], np.arange(200))
    files = get_image_files(D.path("mnist_tiny") / "train")[:40]
    build_image_store(files, None, mode="L")
    root = pipekit_cache_dir()
    images, tokens = cache_usage(root / "images")[0], cache_usage(root / "text")[0]
    assert images > 40 * 28 * 28 and tokens > 0
    return images, tokens


def test_clear_cache_removes_one_kind_or_both_and_says_what_it_freed(imdb, tmp_path):
    root = tmp_path / "cache"
    images, tokens = fill_both_caches(imdb)
    assert pipekit.clear_cache("tokens") == {"tokens": tokens}
    assert not (root / "text").exists() and cache_usage(root / "images")[0] == images
    assert pipekit.clear_cache() == {"images": images, "tokens": 0}
    assert not (root / "images").exists() and pipekit.clear_cache() == {"images": 0, "tokens": 0}
    # a cache folder given to the blocks is cleared the same way
    TextBlock.from_df("text", cache_dir=tmp_path / "mine").setup(imdb["text"], np.arange(200))
    mine = cache_usage(tmp_path / "mine" / "text")[0]
    assert mine > 0 and pipekit.clear_cache("tokens", cache_dir=tmp_path / "mine") == {"tokens": mine}
    with pytest.raises(ParameterError, match=r"kind='text'.*'images', 'tokens'"):
        pipekit.clear_cache("text")


def test_cli_cache_info_and_clear(imdb, tmp_path, capsys):
    root = tmp_path / "cache"
    images, tokens = fill_both_caches(imdb)
    assert main(["cache", "info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # an image entry is a setting; under it, how many copies of images it holds and their size
    assert lines == [f"images   {megabytes(images):>10}      1 setting  {root / 'images'}",
                     f"         {megabytes(images):>10}      1 copy   L, no item transform",
                     f"tokens   {megabytes(tokens):>10}      1 entry  {root / 'text'}"]
    assert main(["cache", "clear", "--tokens"]) == 0
    assert capsys.readouterr().out == f"tokens   freed {megabytes(tokens)} in {root / 'text'}\n"
    assert not (root / "text").exists() and cache_usage(root / "images")[0] == images
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"images   freed {megabytes(images)} in {root / 'images'}",
                                                    f"tokens   freed {megabytes(0)} in {root / 'text'}"]
    assert not (root / "images").exists()
    assert main(["cache", "info", "--images"]) == 0
    assert capsys.readouterr().out == f"images   {megabytes(0):>10}      0 settings  {root / 'images'}\n"
