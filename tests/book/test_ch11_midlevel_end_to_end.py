"""Chapter 11 (data munging with the mid-level API) as a reader writes it, end to end, on real data.

The fastai numbers were measured with fastai 2.8.12 on the same files, splits and seeds (the Siamese pairs come
from the chapter's own transform drawing from Python's ``random``, seeded alike, so they are the same pairs).
"""
from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipekit.core.errors import ExportError, ParameterError, PipelineStepError
from pipekit.data import (Categorize, Datasets, GrandparentSplitter, L, TfmdLists, Transform, fastuple,
                          get_image_files, get_text_files, pad_input, parent_label, show_at)
from pipekit.datasets import path as data_path
from pipekit.vision import (IntToFloatTensor, Normalize, PILImage, Resize, ToTensor, create_body, create_head,
                            imagenet_stats, show_image, xresnet18)


@pytest.fixture(scope="module")
def files() -> L:
    root = data_path("mnist_tiny")
    return L(sorted(get_image_files(root / "train") + get_image_files(root / "valid")))


class SiameseImage(fastuple):  # the chapter's
    def show(self, ctx: Any = None, **kwargs: Any) -> Any:
        img1, img2, same_breed = self
        t1, t2 = (torch.as_tensor(np.asarray(i)).permute(2, 0, 1) for i in (img1, img2))
        line = t1.new_zeros(t1.shape[0], t1.shape[1], 10)
        return show_image(torch.cat([t1, line, t2], dim=2), title=same_breed, ctx=ctx)


class SiameseTransform(Transform):  # the chapter's, written for one file; it keeps none of its arguments
    def __init__(self, files, label_func, splits):
        self.labels = files.map(label_func).unique()
        self.lbl2files = {lbl: L(f for f in files if label_func(f) == lbl) for lbl in self.labels}
        self.label_func = label_func
        self.valid = {f: self._draw(f) for f in files[splits[1]]}

    def encodes(self, f):
        f2, t = self.valid.get(f, self._draw(f))
        return SiameseImage(PILImage.create(f), PILImage.create(f2), t)

    def _draw(self, f):
        same = random.random() < 0.5
        cls = self.label_func(f)
        if not same:
            cls = random.choice(L(lbl for lbl in self.labels if lbl != cls))
        return random.choice(self.lbl2files[cls]), same


def siamese(files: L) -> tuple[SiameseTransform, TfmdLists]:
    splits = GrandparentSplitter()(files)
    random.seed(0)
    tfm = SiameseTransform(files, parent_label, splits)
    return tfm, TfmdLists(files, tfm, splits=splits)


@pytest.fixture(scope="module")
def sia(files) -> tuple[SiameseTransform, TfmdLists]:
    return siamese(files)


def test_a_function_annotated_any_is_a_transform_of_every_value(files):
    # PILImage.create annotates its value as Any: it was refused (isinstance with typing.Any) on every value
    tls = TfmdLists(files[:6], [PILImage.create], splits=[range(4), range(4, 6)])
    assert tls.valid[0].shape == (28, 28, 3) and tls.valid[0].dtype == np.uint8
    assert np.array_equal(tls.valid[1], PILImage.create(files[5]))

    def tail(x: Any) -> str:
        return str(x)[-3:]
    assert (Transform(tail)(12345), Transform(tail)("abcdef")) == ("345", "def")


def test_fastuple_and_resize_keep_the_pair_and_its_label(files):
    img, img1 = PILImage.create(files[0]), PILImage.create(files[1])
    s1 = SiameseImage(img, img1, False)
    assert isinstance(s1, tuple) and len(s1) == 3 and s1[2] is False and SiameseImage(img, img, True)[2] is True
    assert fastuple([1, 2]) == (1, 2) and fastuple(1, 2).add(1) == (2, 3)
    s2 = Resize(224)(s1)
    assert type(s2) is SiameseImage and s2[2] is False
    assert [o.shape for o in s2[:2]] == [(224, 224, 3), (224, 224, 3)] and s2[0].size == (224, 224)
    # fastai's bilinear PIL resize of the same 28x28 digit averages 45.763; OpenCV's interpolation differs slightly
    assert float(np.asarray(s2[0]).mean()) == pytest.approx(45.763, abs=0.1)
    assert type(s2.show()).__name__ == "Axes"


def test_a_transform_written_for_one_item_runs_item_by_item(files, sia):
    tfm, tls = sia
    # the pairs fastai draws with the same seed and split (measured with fastai 2.8.12)
    pairs = [(Path(f).name, Path(f2).name, t) for f, (f2, t) in list(tfm.valid.items())[:5]]
    assert pairs == [("7006.png", "7352.png", False), ("7010.png", "8551.png", True), ("7024.png", "9679.png", True),
                     ("7026.png", "9036.png", False), ("7040.png", "8364.png", False)]
    v = tls.valid[0]
    assert type(v) is SiameseImage and v[2] is False and len(tls.valid) == 699 and len(tls.train) == 709
    f2 = tfm.valid[files[tls.splits[1][0]]][0]
    assert np.array_equal(v[1], PILImage.create(f2))
    assert type(show_at(tls.valid, 0)).__name__ == "Axes"  # the pair's own show

    class Half(Transform):  # one number at a time, failing on one of them
        def encodes(self, x):
            return 10 // x

    with pytest.raises(PipelineStepError, match=r"Half.encode failed on item 2 \(0\) of 4: ZeroDivisionError"):
        TfmdLists([5, 2, 0, 1], [Half])
    assert TfmdLists([5, 2, 1], [Half])[:] == [2, 5, 10]
    assert TfmdLists(["A", "B"], [str.lower])[:] == ["a", "b"]  # fastai's Transform(f) of one value


def test_a_repr_never_raises_but_an_export_still_names_the_missing_parameter(sia):
    tfm, _ = sia
    assert repr(tfm) == "SiameseTransform(label_func=parent_label)"
    with pytest.raises(ExportError, match=r"SiameseTransform cannot be saved: .* argument\(s\) \['files', 'splits'\] are "
                       r"not stored on it.* \(self.files = files, self.splits = splits\)"):
        tfm.to_record()


def test_siamese_loaders_give_fastais_batches(sia):
    _, tls = sia
    tfms: dict[str, Any] = dict(after_item=[Resize(28), ToTensor],
                                after_batch=[IntToFloatTensor, Normalize.from_stats(*imagenet_stats)])
    dls = tls.dataloaders(bs=64, device="cpu", seed=1, **tfms)
    x1, x2, y = dls.valid.one_batch()
    assert [tuple(t.shape) for t in (x1, x2, y)] == [(64, 3, 28, 28), (64, 3, 28, 28), (64,)]
    assert (x1.dtype, y.dtype, dls.n_inp) == (torch.float32, torch.bool, 2)
    # fastai 2.8.12 on the same pairs: the same normalised pixels and labels
    assert float(x1.sum()) == pytest.approx(-200650.98, rel=1e-6) and float(x2.sum()) == pytest.approx(-213864.75,
                                                                                                         rel=1e-6)
    assert y.int().tolist()[:20] == [0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0]
    assert x1[0, :, 14, 10:14].reshape(-1).tolist() == pytest.approx(
        [2.2318, 2.2318, 2.2318, 2.1119, 2.4111, 2.4111, 2.4111, 2.2885, 2.6226, 2.6226, 2.6226, 2.5006], abs=1e-4)
    same = tls.dataloaders(bs=64, device="cpu", seed=1, **tfms).train.one_batch()
    assert all(torch.equal(a, b) for a, b in zip(dls.train.one_batch(), same))  # the same seed, the same batches
    big = tls.dataloaders(bs=64, device="cpu", after_item=[Resize(224), ToTensor], after_batch=tfms["after_batch"])
    assert [tuple(t.shape) for t in big.valid.one_batch()] == [(64, 3, 224, 224), (64, 3, 224, 224), (64,)]
    with pytest.raises(ParameterError, match="after_batch takes batch transforms"):
        tls.dataloaders(after_batch=[Resize(28)])


def test_the_siamese_model_trains_on_the_loaders(files):
    from pipekit.learn import CrossEntropyLossFlat, Learner, Module, accuracy, params

    _, tls = siamese(files[::12])
    dls = tls.dataloaders(bs=32, device="cpu", seed=0, after_item=[Resize(28), ToTensor],
                          after_batch=[IntToFloatTensor, Normalize.from_stats(*imagenet_stats)])

    class SiameseModel(Module):
        def __init__(self, encoder, head):
            self.encoder, self.head = encoder, head

        def forward(self, x1, x2):
            return self.head(torch.cat([self.encoder(x1), self.encoder(x2)], dim=1))

    torch.manual_seed(0)
    model = SiameseModel(create_body(xresnet18), create_head(512 * 2, 2, ps=0.5))
    head_before = [p.detach().clone() for p in params(model.head)]

    def loss_func(out, targ):
        return CrossEntropyLossFlat()(out, targ.long())

    learn = Learner(dls, model, loss_func=loss_func, splitter=lambda m: [params(m.encoder), params(m.head)],
                    metrics=accuracy)
    learn.freeze()
    learn.fit_one_cycle(1, 3e-3)
    train_loss, valid_loss, acc = learn.recorder.values[-1]
    assert np.isfinite(train_loss) and np.isfinite(valid_loss) and 0.0 <= acc <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(head_before, params(model.head)))


@pytest.fixture(scope="module")
def imdb_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imdb_files")
    with open(data_path("imdb_sample") / "texts.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:120]
    for i, r in enumerate(rows):
        d = root / ("test" if i % 5 == 0 else "train") / r["label"]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:03d}.txt").write_text(r["text"])
    return root


def test_datasets_of_one_transform_list_per_part_as_fastai(imdb_folder, capsys):
    from pipekit.text import Numericalize, Tokenizer

    files = L(sorted(get_text_files(imdb_folder, folders=["train", "test"])))
    splits = GrandparentSplitter(valid_name="test")(files)
    dsets = Datasets(files, [[Tokenizer.from_folder(imdb_folder), Numericalize], [parent_label, Categorize()]],
                     splits=splits)
    assert (len(dsets), len(dsets.train), len(dsets.valid)) == (120, 96, 24)
    # fastai 2.8.12 on the same files and split
    assert [dsets.valid[i][1] for i in range(24)] == [0] * 9 + [1] * 15
    assert sum(dsets.train[i][1] for i in range(96)) == 47 and dsets.vocab[1] == ["negative", "positive"]
    x, y = dsets.valid[0]
    assert x.dtype == torch.long and x.ndim == 1 and x[:2].tolist() == [2, 8]  # xxbos xxmaj
    text, label = dsets.decode(dsets.valid[0])
    assert label == "negative" and isinstance(text, str) and len(text) > 100
    show_at(dsets.valid, 0)
    assert capsys.readouterr().out.rstrip().endswith("negative")
    dls = dsets.dataloaders(bs=16, before_batch=pad_input, device="cpu", seed=0)
    xb, yb = dls.valid.one_batch()
    lens = [len(dsets.valid[i][0]) for i in range(16)]
    assert tuple(xb.shape) == (16, max(lens)) and yb.tolist() == [0] * 9 + [1] * 7
    assert int((xb == 1).sum()) == sum(max(lens) - n for n in lens)  # padded with xxpad (1) at the end
    assert torch.equal(xb[0, :lens[0]], dsets.valid[0][0])
    # fastai's keyword, and a loader without padding refuses texts of different lengths, saying what to do
    by_name = Datasets(files, tfms=[[Tokenizer.from_folder(imdb_folder), Numericalize], [parent_label, Categorize()]],
                       splits=splits)
    assert torch.equal(by_name.valid[3][0], dsets.valid[3][0])
    with pytest.raises(Exception, match="before_batch=pad_input"):
        dsets.dataloaders(bs=16, device="cpu").valid.one_batch()


def test_a_transform_of_a_recipe_installed_inside_the_package_is_run_item_by_item_as_a_readers_is():
    """pipekit's recipes are installed as ``pipekit.recipes`` (inside the package): a transform written there for one
    item, as the book recipe's Siamese transform is, falls back to item by item as a reader's does (from an installed
    wheel it was taken for one of pipekit's own and refused the list)."""
    import os

    from pipekit.data import transform as transform_module

    source = "class PlusOne(Transform):\n    def encodes(self, x):\n        return x + 1\n"
    package = os.path.dirname(os.path.dirname(transform_module.__file__))
    made = {}
    for where in ("recipes", "data"):
        scope = {"Transform": Transform}
        exec(compile(source, os.path.join(package, where, "made_here.py"), "exec"), scope)  # noqa: S102
        made[where] = scope["PlusOne"]()
    assert transform_module.written_for_items(made["recipes"]) and not transform_module.written_for_items(made["data"])
    assert TfmdLists([1, 2, 3], made["recipes"], splits=[[0, 1], [2]]).valid[0] == 4
