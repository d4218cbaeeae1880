"""Predictions of a learner on loaders without blocks (chapter 11's mid-level ``Datasets(items, [[PILImage.create],
[parent_label, Categorize()]])`` and ``dsets.dataloaders(after_item=..., after_batch=...)``), on mnist_tiny, as fastai
2.8.12 gives them: ``show_results``, ``predict`` and ``ClassificationInterpretation`` decode the predictions through the
loader (``dl.decode_batch(inp + (dec,))``, the interpretation's classes are ``dl.vocab``), so a prediction reads
``'7'``, not ``tensor(1)``; ``get_preds(with_decoded=True)`` keeps the class codes."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import pipekit.data.show as show_mod
import pipekit.datasets as D
import pipekit.learn.interpret as interpret_mod
from pipekit.data import Categorize, Datasets, GrandparentSplitter, get_image_files, parent_label
from pipekit.learn import ClassificationInterpretation, CrossEntropyLossFlat, Learner
from pipekit.vision import IntToFloatTensor, PILImage, ToTensor

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def files() -> list:
    every = get_image_files(D.path("mnist_tiny"))
    # 176 files ordered by name (80 training, 96 validation: 50 3s and 46 7s), as fastai's script takes them
    return sorted([f for f in every if f.parent.parent.name in ("train", "valid")],
                  key=lambda f: (f.name, os.fspath(f)))[::8]


@pytest.fixture(scope="module")
def dls(files):
    dsets = Datasets(files, [[PILImage.create], [parent_label, Categorize()]], splits=GrandparentSplitter()(files))
    return dsets.dataloaders(bs=16, shuffle=False, device="cpu", seed=0, after_item=[ToTensor],
                             after_batch=[IntToFloatTensor])


def _linear() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2))


@pytest.fixture(scope="module")
def fitted(dls) -> Learner:
    torch.manual_seed(0)
    learn = Learner(dls, _linear(), loss_func=CrossEntropyLossFlat())
    learn.fit(1, 1e-3)
    return learn


@pytest.fixture(scope="module")
def sevens(dls) -> Learner:
    """A learner whose model says '7' for every image (probability 0.7311), so fastai's values are known exactly."""
    model = _linear()
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([0.0, 1.0]))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat())


@pytest.fixture
def figures(monkeypatch):
    """The figures drawn, kept instead of written."""
    kept: list = []
    keep = lambda fig, path=None, name="": kept.append(fig)  # noqa: E731
    monkeypatch.setattr(show_mod, "savefig_or_show", keep)
    monkeypatch.setattr(interpret_mod, "savefig_or_show", keep)
    yield kept
    import matplotlib.pyplot as plt
    for fig in kept:
        plt.close(fig)


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.images]


def test_show_results_and_predict_give_the_labels_the_loader_decodes(files, dls, fitted, sevens, figures):
    # fastai 2.8.12: show_results' items ['7', '7', '3', '7'] with predictions ('7',) each, titled actual / predicted
    sevens.show_results(max_n=4)
    assert _titles(figures[-1]) == ["7 / 7", "7 / 7", "3 / 7", "7 / 7"]
    # fastai 2.8.12: learn.predict(files[0]) of valid/7/0.png is ('7', tensor(1), tensor([0.2689, 0.7311]))
    label, code, probs = sevens.predict(files[0])
    assert label == "7" and code.item() == 1 and torch.allclose(probs, torch.tensor([0.2689, 0.7311]), atol=1e-4)
    shown, label, code, _ = sevens.predict(files[0], with_input=True)
    assert label == "7" and tuple(shown.shape) == (3, 28, 28)  # fastai 2.8.12: the image as ToTensor made it
    # a trained model: each prediction shown is the label of its class code
    fitted.show_results(max_n=6)
    b = dls.valid.one_batch()
    codes = fitted.get_preds(dl=[(b[0][:6], b[1][:6])], with_decoded=True)[2]
    assert _titles(figures[-1]) == [f"{a} / {'37'[c]}" for a, c in zip("773737", codes.tolist())]
    label, code, probs = fitted.predict(files[-1])
    assert label == "37"[code.item()] and code.item() == int(probs.argmax())


def test_get_preds_keeps_codes_and_a_test_dl_is_decoded_by_its_loader(files, dls, sevens, figures):
    # fastai 2.8.12: get_preds(with_decoded=True) gives the class codes, tensor([1, 1, 1, 1, 1, 1]), on a test_dl too
    _, targs, decoded = sevens.get_preds(with_decoded=True)
    assert decoded.dtype == torch.int64 and decoded[:6].tolist() == [1] * 6 and targs[:3].tolist() == [1, 1, 0]
    tdl = dls.test_dl(files[:3])
    assert sevens.get_preds(dl=tdl, with_decoded=True)[2].tolist() == [1, 1, 1]
    # a test loader decodes its items with the transforms of the loader it was made from (see ItemsDataLoader), so
    # the prediction reads '7' (fastai 2.8.12's test set keeps the inputs' transforms only and shows TensorCategory(1))
    sevens.show_results(dl=tdl, max_n=3)
    assert _titles(figures[-1]) == ["7", "7", "7"]


def test_classification_interpretation_names_the_classes_the_loader_decodes(sevens, figures):
    interp = ClassificationInterpretation.from_learner(sevens)
    # fastai 2.8.12: vocab ['3', '7'], most_confused [('3', '7', 50)]
    assert interp.vocab == ["3", "7"] and interp.most_confused() == [("3", "7", 50)]
    # fastai 2.8.12: the top losses titled '7/3 / 1.31 / 0.73' (predicted / actual / loss / probability)
    interp.plot_top_losses(3)
    assert [ax.get_title() for ax in figures[-1].axes if ax.get_title()] == ["7/3 / 1.31 / 0.73"] * 3
    interp.plot_confusion_matrix()
    ax = figures[-1].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "7"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["3", "7"]
    assert [line.split()[0] for line in interp.classification_report().splitlines()[2:4]] == ["3", "7"]



def test_mid_level_loaders_give_the_vocab_of_their_items(dls, files):
    """fastai 2.8.12: dls.vocab, dls.train.vocab and dls.valid.vocab of Datasets' loaders are ['3', '7'], and a
    TfmdLists' loaders give its Categorize's; a test_dl of new items has none."""
    from pipekit.data import TfmdLists

    assert dls.vocab == dls.train.vocab == dls.valid.vocab == ["3", "7"]
    assert dls.test_dl(files[:3]).vocab is None
    tls = TfmdLists(files, [parent_label, Categorize()], splits=GrandparentSplitter()(files))
    assert tls.dataloaders(bs=8).vocab == ["3", "7"]
