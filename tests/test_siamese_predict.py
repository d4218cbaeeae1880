"""New items on loaders of a ``TfmdLists``' items (fastai's Siamese tutorial): ``learn.predict(SiameseImage(img1,
img2))`` and ``dls.test_dl([...])`` read an item from the first transform whose input it already is, as fastai's
``rm_type_tfms`` inference, and give the model's outputs on the validation batch of the same pair; a batch of
``SiameseImage`` items comes back as a ``SiameseImage``, as fastai collates it."""
from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from torch import nn

import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import (Categorize, DataLoader, DataLoaders, Datasets, GrandparentSplitter, L, TfmdLists, Transform,
                          fastuple, get_image_files, parent_label)
from pipekit.data.loader import ArrayDataset
from pipekit.data.store import TensorStore
from pipekit.learn import CrossEntropyLossFlat, Learner
from pipekit.vision import IntToFloatTensor, Normalize, PILImage, Resize, ToTensor, imagenet_stats

pytestmark = pytest.mark.data


class SiameseImage(fastuple):  # the tutorial's
    pass


class SiameseTransform(Transform):  # the tutorial's, written for one file
    def __init__(self, files, splits):
        self.lbl2files = {lbl: [f for f in files if parent_label(f) == lbl] for lbl in ("3", "7")}
        self.valid = {f: self._draw(f) for f in files[splits[1]]}

    def encodes(self, f):
        f2, same = self.valid.get(f, self._draw(f))
        return SiameseImage(PILImage.create(f), PILImage.create(f2), int(same))

    def _draw(self, f):
        same = random.random() < 0.5
        cls = parent_label(f) if same else ("7" if parent_label(f) == "3" else "3")
        return random.choice(self.lbl2files[cls]), same


class SiameseModel(nn.Module):  # a tiny encoder and head: no training is needed to compare outputs
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, 2)

    def forward(self, x1, x2):
        return self.head(torch.cat([self.encoder(x1), self.encoder(x2)], dim=1))


TFMS: dict[str, Any] = dict(after_item=[Resize(32), ToTensor],
                            after_batch=[IntToFloatTensor, Normalize.from_stats(*imagenet_stats)])


@pytest.fixture(scope="module")
def siamese() -> tuple[L, TfmdLists, Learner]:
    root = D.path("mnist_tiny")
    files = L(sorted(get_image_files(root / "train") + get_image_files(root / "valid")))[::25]
    splits = GrandparentSplitter()(files)
    random.seed(0)
    tls = TfmdLists(files, SiameseTransform(files, splits), splits=splits)
    dls = tls.dataloaders(bs=8, device="cpu", seed=0, **TFMS)
    torch.manual_seed(0)
    learn = Learner(dls, SiameseModel(), loss_func=lambda out, targ: CrossEntropyLossFlat()(out, targ.long()))
    return files, tls, learn


def _valid_outputs(learn: Learner) -> tuple[tuple, torch.Tensor]:
    b = learn.dls.valid.one_batch()
    learn.model.eval()
    with torch.no_grad():
        return b, learn.model(b[0], b[1])


def test_predict_on_a_siamese_pair_gives_the_models_outputs_on_its_validation_batch(siamese):
    files, tls, learn = siamese
    b, expected = _valid_outputs(learn)
    img1, img2, same = tls.valid[0]
    res = learn.predict(SiameseImage(img1, img2), rm_type_tfms=None, with_input=False)
    assert len(res) == 3 and res[2].shape == (2,)
    assert torch.allclose(res[2], expected[0], atol=1e-5) and torch.allclose(res[0], expected[0], atol=1e-5)
    # the pair with its label is one item too; with_input gives the two images the model read
    labelled = learn.predict(SiameseImage(img1, img2, same), with_input=True)
    assert torch.allclose(labelled[-1], expected[0], atol=1e-5)
    shown = labelled[0]
    assert len(shown) == 2 and tuple(shown[0].shape) == (3, 32, 32)


def test_test_dl_reads_pairs_and_files_as_fastai_does(siamese):
    files, tls, learn = siamese
    b, expected = _valid_outputs(learn)
    pairs = [SiameseImage(*tls.valid[i][:2]) for i in range(3)]
    # a file goes through the SiameseTransform (its validation pair is the one drawn for it); a pair skips it
    dl = learn.dls.test_dl(pairs)
    x1, x2 = dl.one_batch()
    assert torch.equal(x1, b[0][:3]) and torch.equal(x2, b[1][:3]) and list(dl.items) == pairs
    assert torch.allclose(learn.get_preds(dl=dl)[0], expected[:3], atol=1e-5)
    valid_files = [files[i] for i in tls.splits[1][:2]]
    x1, x2, same = learn.dls.test_dl(valid_files).one_batch()
    assert torch.equal(x1, b[0][:2]) and torch.equal(x2, b[1][:2]) and torch.equal(same, b[2][:2])
    assert torch.allclose(learn.get_preds(dl=learn.dls.test_dl(valid_files))[0], expected[:2], atol=1e-5)
    with pytest.raises(DataError, match=r"item 0 \(3\) is a int; .* SiameseImage"):
        learn.dls.test_dl([3])
    with pytest.raises(ParameterError, match=r"test_dl takes a list of items.*pass \[item\]"):
        learn.dls.test_dl(pairs[0])


def test_a_batch_of_fastuple_items_keeps_their_class(siamese):
    _, _, learn = siamese
    for b in (learn.dls.one_batch(), learn.dls.valid.one_batch(), next(iter(learn.dls.valid))):
        assert type(b) is SiameseImage and len(b) == 3 and tuple(b[0].shape) == (8, 3, 32, 32)
    assert type(learn.dls.test_dl([SiameseImage(*learn.dls.valid_ds[0][:2])]).one_batch()) is SiameseImage
    learn.fit(1, 1e-3)  # training on such batches still works
    assert len(learn.recorder.values) == 1


def test_datasets_loaders_read_new_items_and_loaders_of_encoded_data_say_what_to_do(siamese):
    files, _, _ = siamese
    splits = GrandparentSplitter()(files)
    dsets = Datasets(files, [[PILImage.create], [parent_label, Categorize()]], splits=splits)
    dls = dsets.dataloaders(bs=4, device="cpu", seed=0, **TFMS)
    xb, _ = dls.valid.one_batch()
    (x,) = dls.test_dl(files[splits[1][:2]]).one_batch()
    assert torch.equal(x, xb[:2])
    x, y = dls.test_dl(files[splits[1][:2]], with_labels=True).one_batch()
    assert torch.equal(x, xb[:2]) and y.tolist() == [dsets.valid[0][1], dsets.valid[1][1]]

    ds = ArrayDataset([TensorStore(torch.randn(6, 3)), TensorStore(torch.arange(6) % 2)], n_inp=1)
    hand_made = DataLoaders(DataLoader(ds, bs=2, device="cpu"), DataLoader(ds, bs=2, device="cpu"))
    with pytest.raises(DataError, match="hold no recipe to encode new items.*DataLoaders.from_dsets"):
        hand_made.test_dl([torch.randn(3)])
