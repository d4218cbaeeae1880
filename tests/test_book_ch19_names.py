"""Chapter 19's spellings and their neighbours, as fastai 2.8.12 answers them: a ``DataLoader`` over a map-style
dataset (the book's own ``Dataset`` class, ``TensorDataset``), ``L``'s ``~``, ``val2idx`` and ``L.range``, the star
import's ``to_device``, ``Tensor`` and ``ProcessPoolExecutor``, fastai's AWD-LSTM config dicts, ``PILImage.create``
of a file object, and ``load_learner(path/'export.pkl')``. The expected values were measured with fastai on the
same files and written here."""
from __future__ import annotations

import concurrent.futures
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import DataLoader, DataLoaders, L

pytestmark = pytest.mark.data


def _mnist_files() -> L:
    """mnist_tiny's train and valid images (not its unlabelled test/ folder), sorted: 709 + 699 files."""
    return L(sorted(D.path("mnist_tiny").glob("*/*/*.png")))


class BookDataset:
    """Chapter 19's ``Dataset``: file names in, ``(pixels / 255, class index)`` out, read with PIL."""

    def __init__(self, fns, v2i):
        self.fns, self.v2i = fns, v2i

    def __len__(self):
        return len(self.fns)

    def __getitem__(self, i):
        im = Image.open(self.fns[i]).convert("RGB")
        return torch.tensor(np.array(im)).float() / 255, torch.tensor(self.v2i[self.fns[i].parent.name])


@pytest.fixture(scope="module")
def book_dsets():
    files, v2i = _mnist_files(), {"3": 0, "7": 1}
    return (BookDataset([f for f in files if f.parent.parent.name == "train"], v2i),
            BookDataset([f for f in files if f.parent.parent.name == "valid"], v2i))


def test_dataloader_batches_the_book_chapter19_dataset_as_fastai(book_dsets):
    train_ds, valid_ds = book_dsets
    torch.manual_seed(0)
    dl = DataLoader(train_ds, batch_size=16, shuffle=True)
    batches = list(dl)
    xb, yb = batches[0]
    # fastai: len 45, first batch (16, 28, 28, 3) float32 and (16,) int64, last batch 5, every item once (sum 363)
    assert len(dl) == len(batches) == 45
    assert (tuple(xb.shape), tuple(yb.shape), xb.dtype, yb.dtype) == ((16, 28, 28, 3), (16,), torch.float32, torch.int64)
    ys = torch.cat([y for _, y in batches]).tolist()
    assert (len(batches[-1][1]), len(ys), sum(ys)) == (5, 709, 363)
    in_order = [train_ds.v2i[f.parent.name] for f in train_ds.fns]
    assert sorted(ys) == sorted(in_order) and ys != in_order  # shuffled, as fastai's
    assert float(xb.max()) <= 1.0 and float(xb.min()) >= 0.0
    # fastai: drop_last=True gives 44 full batches
    full = DataLoader(train_ds, batch_size=16, shuffle=True, drop_last=True)
    assert len(full) == 44 and {len(y) for _, y in full} == {16}
    # fastai: the validation loader keeps the dataset's order, 22 batches, labels summing to 353
    vdl = DataLoader(valid_ds, batch_size=32)
    vy = torch.cat([y for _, y in vdl]).tolist()
    assert len(vdl) == 22 and vy == [valid_ds.v2i[f.parent.name] for f in valid_ds.fns] and sum(vy) == 353
    assert vy[:5] == [0, 0, 0, 0, 0]
    dls = DataLoaders(dl, vdl)
    assert [tuple(t.shape) for t in dls.valid.one_batch()] == [(32, 28, 28, 3), (32,)]


def test_dataloader_takes_torch_map_style_datasets_as_fastai():
    from torch.utils.data import Dataset, TensorDataset

    x, y = torch.arange(100.0).reshape(50, 2), torch.arange(50) % 3
    batches = list(DataLoader(TensorDataset(x, y), batch_size=16))
    # fastai: 4 batches, (16, 2) and (16,), rows in order, last targets [0, 1]
    assert len(batches) == 4 and [tuple(t.shape) for t in batches[0]] == [(16, 2), (16,)]
    assert batches[0][0][:2].tolist() == [[0.0, 1.0], [2.0, 3.0]] and batches[-1][1].tolist() == [0, 1]

    class One(Dataset):  # items that are not tuples: a batch is one tensor, as fastai's
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return torch.full((3,), float(i))

    b = next(iter(DataLoader(One(), batch_size=4)))
    assert isinstance(b, torch.Tensor) and tuple(b.shape) == (4, 3) and b[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]

    class NoLen(Dataset):  # a dataset without a length cannot be read item by item: still refused
        def __getitem__(self, i):
            return torch.zeros(2)

    with pytest.raises(ParameterError, match=r"__len__ and __getitem__.*got a NoLen"):
        DataLoader(NoLen(), batch_size=4)
    with pytest.raises(ParameterError, match=r"DataLoader takes a pipekit dataset .*got a dict"):
        DataLoader({"x": [1, 2]}, batch_size=2)


def test_L_invert_val2idx_and_range_as_fastcore(book_dsets):
    files = _mnist_files()
    train_filt = L(o.parent.parent.name == "train" for o in files)
    valid = files[~train_filt]
    root = D.path("mnist_tiny")
    # fastcore: 699 validation files, the first valid/3/7006.png; ~ of the mask is an L
    assert len(valid) == 699 and valid[0].relative_to(root) == Path("valid/3/7006.png")
    assert type(~train_filt) is L and (~train_filt)[:3] == [False, False, False]
    assert ~L([True, False, 0, 3]) == [False, True, True, False]
    assert files.map(lambda o: o.parent.name).unique().val2idx() == {"3": 0, "7": 1}
    assert L(["a", "b", "a"]).val2idx() == {"a": 2, "b": 1}  # a repeated value: its last position
    train_ds, _ = book_dsets
    idxs = L.range(train_ds)
    assert type(idxs) is L and len(idxs) == 709 and idxs[:3] == [0, 1, 2]
    assert L.range(3) == [0, 1, 2] and L.range(2, 8, 3) == [2, 5] and L.range(torch.tensor(3)) == [0, 1, 2]


def test_star_import_gives_to_device_tensor_and_process_pool():
    ns: dict = {}
    exec("from pipekit.vision.all import *", ns)
    assert ns["Tensor"] is torch.Tensor
    assert issubclass(ns["ProcessPoolExecutor"], concurrent.futures.ProcessPoolExecutor)
    to_device = ns["to_device"]
    x, y = torch.zeros(2, 3), torch.arange(2)
    # fastai: every tensor moved, the containers kept (a list stays a list, a dict a dict)
    moved = to_device([x[:1], y[:1]], "cpu")
    assert type(moved) is list and [t.device.type for t in moved] == ["cpu", "cpu"]
    pair = to_device((x, {"a": y}), "cpu")
    assert type(pair[1]) is dict and pair[1]["a"].device.type == "cpu"
    xb, yb = to_device((x, y))  # the default device: the GPU when there is one
    assert xb.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_awd_lstm_config_dicts_are_fastais():
    ns: dict = {}
    exec("from pipekit.text.all import *", ns)
    assert ns["awd_lstm_lm_config"] == {
        "emb_sz": 400, "n_hid": 1152, "n_layers": 3, "pad_token": 1, "bidir": False, "output_p": 0.1,
        "hidden_p": 0.15, "input_p": 0.25, "embed_p": 0.02, "weight_p": 0.2, "tie_weights": True, "out_bias": True}
    assert ns["awd_lstm_clas_config"] == {
        "emb_sz": 400, "n_hid": 1152, "n_layers": 3, "pad_token": 1, "bidir": False, "output_p": 0.4,
        "hidden_p": 0.3, "input_p": 0.4, "embed_p": 0.05, "weight_p": 0.5}


@pytest.fixture(scope="module")
def imdb_60():
    import polars as pl

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    return pl.concat([df.filter(~pl.col("is_valid")).head(40), df.filter(pl.col("is_valid")).head(20)])


def test_fastai_config_builds_and_trains_a_language_model(imdb_60, one_torch_thread):
    from pipekit.text import AWD_LSTM, TextDataLoaders, awd_lstm_lm_config, language_model_learner

    dls = TextDataLoaders.from_df(imdb_60, text_col="text", is_lm=True, valid_pct=0.1, seed=0, bs=64, seq_len=36,
                                  cache_dir=False)
    config = awd_lstm_lm_config.copy()
    config.update({"emb_sz": 32, "n_hid": 48, "n_layers": 2})
    learn = language_model_learner(dls, AWD_LSTM, config=config, drop_mult=0.3)
    assert awd_lstm_lm_config["n_hid"] == 1152  # the copy was changed, not fastai's dict
    # fastai's get_language_model(AWD_LSTM, 672, config) has 48,416 parameters, its decoder tied and with a bias
    assert len(dls.vocab) == 672
    assert sum(p.numel() for p in learn.model.parameters()) == 48416
    assert learn.model[1].decoder.weight is learn.model[0].encoder.weight and learn.model[1].decoder.bias is not None
    learn.fit(1, 1e-2)
    assert all(math.isfinite(v) for v in learn.recorder.values[-1][:2])


def test_fastai_config_builds_and_trains_a_classifier_and_refuses_what_it_cannot_build(imdb_60, one_torch_thread):
    from pipekit.text import AWD_LSTM, TextDataLoaders, awd_lstm_clas_config, text_classifier_learner

    dls = TextDataLoaders.from_df(imdb_60, text_col="text", label_col="label", valid_col="is_valid", bs=16, seed=0,
                                  cache_dir=False)
    config = awd_lstm_clas_config.copy()
    config.update({"n_hid": 100})  # fastai's documented idiom
    learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=0.5, config=config)
    # fastai's get_text_classifier(AWD_LSTM, 512, 2, config): its encoder has 1,289,600 parameters
    assert len(learn.text_vocab) == 512
    assert sum(p.numel() for p in learn.encoder.parameters()) == 1289600
    small = awd_lstm_clas_config.copy()
    small.update({"emb_sz": 32, "n_hid": 48, "n_layers": 2})
    learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=0.5, config=small)
    assert sum(p.numel() for p in learn.encoder.parameters()) == 42624  # fastai's encoder: 42,624
    learn.fit(1, 1e-2)
    assert all(math.isfinite(v) for v in learn.recorder.values[-1][:2])
    # fastai's language-model keys at their values are accepted; what pipekit's AWD-LSTM is not is refused by name
    text_classifier_learner(dls, AWD_LSTM, config={**small, "tie_weights": True, "out_bias": True})
    for key, value in (("bidir", True), ("tie_weights", False), ("out_bias", False)):
        with pytest.raises(ParameterError, match=rf"config: {key}={value} is not supported: .*set it to {not value}"):
            text_classifier_learner(dls, AWD_LSTM, config={**small, key: value})
    with pytest.raises(ParameterError, match=r"unknown keys \['n_hidden'\]; accepted: .*'bidir'"):
        text_classifier_learner(dls, AWD_LSTM, config={**small, "n_hidden": 3})


# fastai's PILImage.create of each file's bytes: shape, sum of the pixels, first pixel
JPEG, PNG = ("dogscats", "train/cats/cat.0.jpg"), ("mnist_tiny", "train/3/7.png")
FASTAI_PIXELS = {JPEG: ((200, 200, 3), 14385882, [206, 163, 84]), PNG: ((28, 28, 3), 107601, [0, 0, 0])}


@pytest.mark.parametrize("where", [JPEG, PNG])
def test_pilimage_create_decodes_binary_file_objects_as_fastai(where):
    from pipekit.vision import PILImage

    f = D.path(where[0]) / where[1]
    data = f.read_bytes()
    moved_on = io.BytesIO(data)
    moved_on.read(10)  # read from the start, as PIL's Image.open reads one
    with open(f, "rb") as opened:
        for value in (io.BytesIO(data), moved_on, opened):
            a = np.asarray(PILImage.create(value))
            assert (a.shape, int(a.astype(np.int64).sum()), a[0, 0].tolist()) == FASTAI_PIXELS[where]


def test_a_file_object_predicts_as_its_file_and_a_text_file_object_is_refused(mnist_learner):
    from pipekit.vision import ImageDecodeError, PILImage, PILImageBW

    f = D.path("mnist_tiny") / "valid" / "7" / "9294.png"
    if not f.exists():
        f = sorted((D.path("mnist_tiny") / "valid" / "7").glob("*.png"))[0]
    label, _, probs = mnist_learner.predict(f)
    for cls in (PILImage, PILImageBW):
        got, _, got_probs = mnist_learner.predict(cls.create(io.BytesIO(f.read_bytes())))
        assert got == label and torch.allclose(got_probs, probs)
    for given in (io.BytesIO(f.read_bytes()), open(f, "rb")):  # the file object itself, as fastai's predict takes it
        with given:
            got, _, got_probs = mnist_learner.predict(given)
        assert got == label and torch.allclose(got_probs, probs)
    with open(f, encoding="latin-1") as text, pytest.raises(ImageDecodeError, match=r"binary mode: open\(path, 'rb'\)"):
        PILImage.create(text)


def test_load_learner_of_a_missing_pkl_names_the_pipekit_export(tmp_path, mnist_learner):
    from pipekit.backends import load_model
    from pipekit.learn import load_learner

    # fastai: FileNotFoundError for a missing export.pkl; pipekit says what learn.export() wrote instead
    with pytest.raises(FileNotFoundError, match=r"no such file: .*export\.pkl; pipekit's learn\.export\(\) writes "
                                                r"export\.pipekit .*the name given to it whatever its suffix.*"
                                                r"load the file learn\.export\(\) wrote$"):
        load_learner(tmp_path / "export.pkl")
    written = mnist_learner.export(tmp_path / "export.pipekit")
    for load in (load_learner, load_model):
        with pytest.raises(FileNotFoundError, match=rf"writes export\.pipekit .*: load {re.escape(str(written))}$"):
            load(tmp_path / "export.pkl")
    with pytest.raises(FileNotFoundError, match=r"^no such file: \S*model\.pipekit$"):  # no hint for other names
        load_learner(tmp_path / "model.pipekit")
