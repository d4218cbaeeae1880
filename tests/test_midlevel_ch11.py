"""Chapter 11's mid-level API on real data (imdb_sample reviews written to folders, mnist_tiny): a text ``Datasets``'
loaders shown (``show_batch``, ``show_results``), their ``dls.c``, ``dl_type=SortedDL`` and ``dl_type=LMDataLoader``,
titles of ``False``, ``tls.show``/``dsets.show`` returning what fastai's return, and the pictures of a ``TfmdLists``
normalised by its batch transforms."""
from __future__ import annotations

import matplotlib
import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

import pipekit.data.show as show_mod
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import (Categorize, Datasets, GrandparentSplitter, TfmdLists, fastuple, get_image_files,
                          get_text_files, pad_input, parent_label, show_at)
from pipekit.data.plotting import show_image, tensor_image
from pipekit.learn import CrossEntropyLossFlat, Learner
from pipekit.text import LMDataLoader, Numericalize, SortedDataLoader, Tokenizer
from pipekit.vision import IntToFloatTensor, Normalize, PILImage, Resize, ToTensor, imagenet_stats

matplotlib.use("Agg")
PAD = 1  # xxpad's id, which pad_input pads with


@pytest.fixture(scope="module")
def imdb_folder(tmp_path_factory):
    """48 imdb_sample reviews as chapter 11 reads them: train/ and test/ folders of one folder per label."""
    root = tmp_path_factory.mktemp("imdb")
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    for split, rows in (("train", df.filter(~pl.col("is_valid")).head(32)), ("test", df.filter(pl.col("is_valid")).head(16))):
        for i, (label, text) in enumerate(rows.select("label", "text").iter_rows()):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def files(imdb_folder):
    return get_text_files(imdb_folder, folders=["train", "test"])


@pytest.fixture(scope="module")
def dsets(imdb_folder, files):
    tfms = [[Tokenizer.from_folder(imdb_folder), Numericalize], [parent_label, Categorize]]
    return Datasets(files, tfms, splits=GrandparentSplitter(valid_name="test")(files))


@pytest.fixture(scope="module")
def mnist_files():
    """10 3s and 10 7s of mnist_tiny's train/ folder, then of its valid/ folder."""
    root = D.path("mnist_tiny")
    return [f for split in ("train", "valid") for digit in ("3", "7")
            for f in sorted(get_image_files(root / split / digit), key=str)[:10]]


@pytest.fixture
def figures(monkeypatch):
    """The figures show_batch/show_results draw, kept instead of written."""
    kept = []
    monkeypatch.setattr(show_mod, "savefig_or_show", lambda fig, path=None, name="": kept.append(fig))
    yield kept
    import matplotlib.pyplot as plt
    for fig in kept:
        plt.close(fig)


def _words(text: str) -> list[str]:
    return text.split()


def _cells(fig) -> list[tuple[str, str]]:
    """(title, text written) of each cell of a show_batch figure."""
    return [(ax.get_title(), " ".join(t.get_text() for t in ax.texts)) for ax in fig.axes]


class _TinyTextModel(nn.Module):
    def __init__(self, n_vocab: int, n_out: int):
        super().__init__()
        self.emb, self.out = nn.Embedding(n_vocab, 8), nn.Linear(8, n_out)

    def forward(self, x):
        return self.out(self.emb(x).mean(1))


# ---------------------------------------------------------------- show_batch / show_results of texts without blocks
def test_show_batch_of_a_text_datasets_writes_each_text_under_its_label(dsets, figures):
    dls = dsets.dataloaders(bs=8, before_batch=pad_input, seed=0)
    for dl in (dls.train, dls.valid):  # dls.show_batch() and dls.valid.show_batch()
        rows = dl.decode_batch(dl.one_batch(), max_n=2)
        assert all(isinstance(text, str) and label in ("negative", "positive") for text, label in rows)
        dl.show_batch(max_n=2)
        cells = _cells(figures[-1])
        assert [title for title, _ in cells] == [label for _, label in rows]
        # each cell holds its text (its first 600 characters, wrapped)
        assert [_words(text) for _, text in cells] == [_words(text[:600]) for text, _ in rows]


def test_show_batch_of_a_text_datasets_in_a_notebook_is_a_table_of_texts_and_labels(dsets, monkeypatch):
    dls = dsets.dataloaders(bs=8, before_batch=pad_input, seed=0)
    tables = []
    monkeypatch.setattr(show_mod, "plot_mode", lambda: "inline")
    monkeypatch.setattr(show_mod, "show_text_table", tables.append)
    assert dls.valid.show_batch(max_n=3) is None
    rows = dls.valid.decode_batch(dls.valid.one_batch(), max_n=3)
    assert tables == [{"text": [t for t, _ in rows], "category": [y for _, y in rows]}]
    assert tables[0]["text"][0].split()[:5] == rows[0][0].split()[:5] and len(tables[0]["text"][0]) > 100


def test_show_results_of_a_text_datasets_titles_each_text_actual_slash_predicted(dsets, figures):
    dls = dsets.dataloaders(bs=8, before_batch=pad_input, seed=0)
    learn = Learner(dls, _TinyTextModel(len(dsets.tls[0].vocab), 2), loss_func=CrossEntropyLossFlat())
    learn.show_results(max_n=3)
    rows = dls.valid.decode_batch(dls.valid.one_batch(), max_n=3)
    cells = _cells(figures[-1])
    assert [_words(text) for _, text in cells] == [_words(text[:600]) for text, _ in rows]
    for (title, _), (_, label) in zip(cells, rows):
        actual, predicted = title.split(" / ")
        assert actual == label and predicted in ("negative", "positive")


def test_tensor_image_is_none_for_values_that_are_not_numbers():
    assert tensor_image("xxbos a fine film") is None and tensor_image(np.array(["a", "b"])) is None
    assert tensor_image([[1, 2], [3]]) is None  # ragged
    assert tensor_image(np.zeros((4, 5), np.uint8)).shape == (4, 5, 1)


# ---------------------------------------------------------------- dls.c
def test_dls_c_of_datasets_and_tfmdlists_loaders_is_the_number_of_classes(dsets, mnist_files):
    dls = dsets.dataloaders(bs=8, before_batch=pad_input, seed=0)
    assert dls.vocab[1] == ["negative", "positive"] and dls.c == 2
    splits = GrandparentSplitter()(mnist_files)
    img = Datasets(mnist_files, [[PILImage.create], [parent_label, Categorize()]], splits=splits).dataloaders(
        bs=16, after_item=[Resize(28), ToTensor], after_batch=[IntToFloatTensor, Normalize.from_stats(*imagenet_stats)],
        seed=0)
    assert img.vocab == ["3", "7"] and img.c == 2
    head = nn.Linear(3 * 28 * 28, img.c)  # chapter 14's nn.Linear(256, dls.c)
    assert head(img.one_batch()[0].flatten(1)).shape == (16, 2)
    labels = TfmdLists(mnist_files, [parent_label, Categorize()], splits=splits)
    assert labels.dataloaders(bs=8, seed=0).c == 2


# ---------------------------------------------------------------- dl_type=SortedDL / LMDataLoader
def test_sorted_dl_is_in_the_text_star_import():
    import pipekit.text.all as text_all

    assert "SortedDL" in dir(text_all) and text_all.SortedDL.__module__ == "pipekit.text.loaders"


def test_sorted_dl_batches_texts_of_similar_lengths(dsets):
    from pipekit.text import SortedDL

    dls = dsets.dataloaders(bs=8, dl_type=SortedDL, before_batch=pad_input, seed=0)  # chapter 11's last cell
    train_lens = sorted((len(x) for x, _ in dsets.train), reverse=True)
    valid_lens = [len(x) for x, _ in dsets.valid]
    # validation: longest first, in order
    shown = [n for x, _ in dls.valid for n in (x != PAD).sum(1).tolist()]
    assert shown == sorted(valid_lens, reverse=True)
    # training: the 32 texts in batches of 8 consecutive lengths, the batch of the longest first
    batches = [sorted((x != PAD).sum(1).tolist(), reverse=True) for x, _ in dls.train]
    assert batches[0][0] == train_lens[0] and len(batches) == 4
    assert sorted(batches) == sorted(train_lens[i:i + 8] for i in range(0, 32, 8))
    plain = dsets.dataloaders(bs=8, before_batch=pad_input, seed=0)
    assert sum(x.numel() for x, _ in dls.train) < sum(x.numel() for x, _ in plain.train)
    # a learner's predictions come back in the items' order
    learn = Learner(dls, _TinyTextModel(len(dsets.tls[0].vocab), 2), loss_func=CrossEntropyLossFlat())
    _, targs = learn.get_preds()
    assert targs.tolist() == [y for _, y in dsets.valid]


def test_dl_type_lm_data_loader_cuts_windows_of_a_tfmdlists_token_ids(imdb_folder, files):
    tls = TfmdLists(files, [Tokenizer.from_folder(imdb_folder), Numericalize],
                    splits=GrandparentSplitter(valid_name="test")(files))
    dls = tls.dataloaders(bs=4, seq_len=16, dl_type=LMDataLoader, seed=0)  # fastai's tutorial
    x, y = dls.valid.one_batch()
    assert x.shape == y.shape == (4, 16)
    stream = torch.cat(list(tls.valid))
    assert x[0].tolist() == stream[:16].tolist() and y[0].tolist() == stream[1:17].tolist()
    assert dls.vocab == tls.vocab and dls.c == len(tls.vocab)
    text, next_text = dls.valid.decode_batch((x, y), max_n=1)[0]
    assert text == tls.decode(x[0]) and next_text == tls.decode(y[0]) and len(text.split()) > 5


def test_dataloaders_refuses_a_dl_type_or_seq_len_it_cannot_use(dsets):
    with pytest.raises(ParameterError, match=r"dl_type=SortedDataLoader cannot batch these items; give dl_type=SortedDL"):
        dsets.dataloaders(bs=8, dl_type=SortedDataLoader, before_batch=pad_input)
    with pytest.raises(ParameterError, match=r"seq_len=16 sets the window .* give it with dl_type=LMDataLoader"):
        dsets.dataloaders(bs=8, seq_len=16)
    with pytest.raises(ParameterError, match=r"LMDataLoader reads one part per item, its token ids, and these Datasets "
                                             r"have 2"):
        dsets.dataloaders(bs=8, dl_type=LMDataLoader)
    with pytest.raises(ParameterError, match=r"after_item, before_batch and after_batch do not apply"):
        TfmdLists(dsets.items, dsets.tls[0].pipeline, splits=dsets.splits).dataloaders(
            bs=4, dl_type=LMDataLoader, before_batch=pad_input)


# ---------------------------------------------------------------- a title of False
class SiameseImage(fastuple):  # chapter 11's
    def show(self, ctx=None, **kwargs):
        img1, img2, same_breed = self
        if not isinstance(img1, torch.Tensor):
            if img2.size != img1.size:
                img2 = img2.resize(img1.size)
            t1, t2 = torch.tensor(np.array(img1)).permute(2, 0, 1), torch.tensor(np.array(img2)).permute(2, 0, 1)
        else:
            t1, t2 = img1, img2
        line = t1.new_zeros(t1.shape[0], t1.shape[1], 10)
        return show_image(torch.cat([t1, line, t2], dim=2), title=same_breed, ctx=ctx)


def test_a_title_of_false_or_zero_is_written(mnist_files):
    import matplotlib.pyplot as plt

    from pipekit.vision import BBoxBlock, MaskBlock, PointBlock

    img, img1 = PILImage.create(mnist_files[0]), PILImage.create(mnist_files[-1])
    assert SiameseImage(img, img1, False).show().get_title() == "False"
    assert SiameseImage(img, img, True).show().get_title() == "True"
    assert show_image(img, title=0).get_title() == "0" and show_image(img).get_title() == ""
    for block, value in ((PointBlock(), np.zeros((1, 2), np.float32)), (BBoxBlock(), np.zeros((1, 4), np.float32)),
                         (MaskBlock(codes=["a", "b"]), np.zeros((4, 4), np.int64))):
        _, ax = plt.subplots()
        block.show(ax, value, title=False)
        assert ax.get_title() == "False", type(block).__name__
    plt.close("all")


# ---------------------------------------------------------------- tls.show / dsets.show return what fastai's return
def test_tfmdlists_and_datasets_show_print_once_and_return_the_ctx(dsets, mnist_files, capsys):
    texts = dsets.tls[0]
    assert texts.show(texts[0]) is None
    assert capsys.readouterr().out.strip() == texts.decode(texts[0])
    assert dsets.show(dsets.valid[0]) is None and show_at(dsets.valid, 0) is None
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == dsets.valid.decode(dsets.valid[0])[1] and out.count(out[-1]) == 2
    img = Datasets(mnist_files, [[PILImage.create], [parent_label, Categorize()]])
    assert img.show(img[0]).get_title() == "3"


# ---------------------------------------------------------------- IntToFloatTensor + Normalize, shown
def test_pictures_of_a_normalised_tfmdlists_are_shown_with_their_own_brightness(mnist_files, figures):
    def dim(t):  # a picture at half brightness
        return t // 2

    tls = TfmdLists(mnist_files, [PILImage.create], splits=GrandparentSplitter()(mnist_files))
    dls = tls.dataloaders(bs=4, after_item=[Resize(28), ToTensor, dim],
                          after_batch=[IntToFloatTensor, Normalize.from_stats(*imagenet_stats)], seed=0)
    (x,), = dls.valid.decode_batch(dls.valid.one_batch(), max_n=1)
    pixels = np.asarray(PILImage.create(tls.valid.items[0])) // 2
    assert np.abs(np.round(x.permute(1, 2, 0).numpy() * 255) - pixels).max() == 0  # decoded as the item was
    dls.valid.show_batch(max_n=1)
    drawn = figures[-1].axes[0].get_images()[0].get_array()
    # the decoded floats are a rounding below 0 (-3e-8): drawn as they are, not stretched to full brightness
    assert float(drawn.max()) == pytest.approx(float(pixels.max()) / 255, abs=1e-6) and pixels.max() < 128
    assert figures[-1].axes[0].get_title() == ""  # a TfmdLists of images alone: no label
