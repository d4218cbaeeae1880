"""A Hugging Face tokenizer trained on imdb_sample as the TextBlock tokenizer: tokens as the library gives
them, ids, decoding, the token cache, and exports that carry the tokenizer as data."""
from __future__ import annotations

import zipfile

import numpy as np
import polars as pl
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import pipekit
import pipekit.datasets as D
from pipekit.core import DataError, ParameterError
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock
from pipekit.learn import accuracy, load_learner
from pipekit.text import HFTokenizer, TextBlock
from pipekit.text.learner import text_classifier_learner
from pipekit.text.models import AWD_LSTM


@pytest.fixture(scope="module")
def imdb() -> pl.DataFrame:
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    return pl.concat([df.filter(~pl.col("is_valid")).head(200), df.filter(pl.col("is_valid")).head(50)])


@pytest.fixture(scope="module")
def tokenizer_json(imdb, tmp_path_factory):
    """A byte-level BPE tokenizer trained on the training reviews only, saved as tokenizer.json."""
    tk = Tokenizer(models.BPE(unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(imdb.filter(~pl.col("is_valid"))["text"].to_list(), trainers.BpeTrainer(
        vocab_size=1200, special_tokens=["[UNK]"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tk.save(str(path))
    return path


def dataloaders(imdb, tok, cache_dir=False):
    block = TextBlock.from_df("text", tok=tok, min_freq=1, cache_dir=cache_dir)
    db = DataBlock(blocks=(block, CategoryBlock), get_x=ColReader("text"), get_y=ColReader("label"),
                   splitter=ColSplitter("is_valid"))
    return db.dataloaders(imdb, bs=32, seed=0, num_workers=0)


def test_a_trained_tokenizer_json_tokenizes_as_the_library_does(imdb, tokenizer_json):
    library = Tokenizer.from_file(str(tokenizer_json))
    dls = dataloaders(imdb, HFTokenizer(tokenizer_json))
    block = dls.blocks[0]
    text = imdb["text"][3]
    enc = library.encode(text, add_special_tokens=False)
    assert block.tok.tokenize(text) == ["xxbos", *enc.tokens]
    # ids: every piece of the training texts is in the vocab (min_freq=1), xxunk only for unseen pieces
    ids = block.encode_text(text)
    vocab = block.vocab
    assert [vocab[i] for i in ids] == ["xxbos", *enc.tokens]
    # decoding goes through the tokenizer's own decoder: the review comes back as the library decodes it
    assert block.decode(torch.as_tensor(ids)) == library.decode(enc.ids)
    assert block.decode(torch.as_tensor(ids)).strip() == text.strip()
    # batches are the reviews' ids, padded first, sorted by length for the classifier
    x, y = dls.one_batch()
    assert x.dtype == torch.int64 and x.shape[0] == 32 and set(dls.vocab[1]) == {"negative", "positive"}
    assert (x[:, -1] != block.pad_idx).all()
    # the same tokenizer as an object or as JSON text gives the same ids
    for source in (library, tokenizer_json.read_text()):
        assert np.array_equal(dataloaders(imdb, HFTokenizer(source)).blocks[0].encode_text(text), ids)


def test_the_token_cache_is_keyed_by_the_tokenizer_content(imdb, tokenizer_json, tmp_path):
    cache = tmp_path / "cache"
    first = dataloaders(imdb, HFTokenizer(tokenizer_json), cache_dir=cache).blocks[0]
    again = dataloaders(imdb, HFTokenizer(tokenizer_json), cache_dir=cache).blocks[0]
    assert not first.from_cache_ and again.from_cache_ and again.vocab == first.vocab
    # another tokenizer at the same path: a new cache entry, not the old ids
    other = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    other.pre_tokenizer = pre_tokenizers.Whitespace()
    other.train_from_iterator(imdb["text"].to_list(), trainers.WordLevelTrainer(special_tokens=["[UNK]"],
                                                                               show_progress=False))
    other.save(str(tokenizer_json.parent / "other.json"))
    third = dataloaders(imdb, HFTokenizer(tokenizer_json.parent / "other.json"), cache_dir=cache).blocks[0]
    assert not third.from_cache_ and third.vocab != first.vocab


def test_exports_keep_the_tokenizer_as_data(imdb, tokenizer_json, tmp_path, one_torch_thread):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(tokenizer_json.read_bytes())
    dls = dataloaders(imdb, HFTokenizer(path))
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=24, n_hid=48, n_layers=1), metrics=accuracy,
                                    path=tmp_path)
    learn.fit_one_cycle(1, 1e-2)
    f = learn.export(tmp_path / "clf.pipekit")
    path.unlink()  # the file the tokenizer came from is gone: the export must carry it
    loaded = load_learner(f)
    new = pl.DataFrame({"text": ["A dull, boring film.", "What a wonderful, moving story!"]})
    a = learn.get_preds(dl=learn.dls.test_dl(new))[0]
    b = loaded.get_preds(dl=loaded.dls.test_dl(new))[0]
    assert torch.allclose(a, b, atol=1e-5)
    tok = loaded.dls.blocks[0].tok
    assert isinstance(tok, HFTokenizer) and tok.tokenize(new["text"][1]) == dls.blocks[0].tok.tokenize(new["text"][1])
    # in the file the tokenizer is its JSON (arrays.npz, as UTF-8 bytes), not a path and not a pickle
    with zipfile.ZipFile(f) as z:
        record = z.read("record.json").decode()
        assert str(path) not in record and all(n.split(".")[-1] in ("json", "npz", "safetensors") for n in z.namelist())
    block = pipekit.load(pipekit.save(dls.blocks[0], tmp_path / "block.pipekit"))
    assert block.tok.json() == Tokenizer.from_file(str(tokenizer_json)).to_str()


def test_bad_tokenizers_are_named(tmp_path):
    # a path given as text is tested when the data is built (a file's record is refused before any path test)
    with pytest.raises(ParameterError, match="'missing.json' is not a file"):
        HFTokenizer("missing.json").setup(["a text"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "1.0", "model": {"type": "NoSuchModel"}}')
    with pytest.raises(DataError, match="bad.json is not a tokenizer the tokenizers library can read"):
        HFTokenizer(bad)
    with pytest.raises(ParameterError, match="HFTokenizer: tokenizer=3 is not accepted"):
        HFTokenizer(3)
