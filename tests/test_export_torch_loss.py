"""A learner trained with one of PyTorch's own losses (``loss_func=nn.CrossEntropyLoss()``) exports it by name: the
loaded learner predicts what the exported one did and trains on; a crafted loss record is refused by name."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from file_edits import edited_copy, refused_quickly
from pipekit.learn import Learner, load_learner, simple_cnn

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def learn(mnist_dls):
    learn = Learner(mnist_dls, simple_cnn(1, 2, (4, 8)), loss_func=nn.CrossEntropyLoss(label_smoothing=0.1))
    learn.fit(1, 1e-2)
    return learn


def test_the_loaded_learner_predicts_and_scores_as_the_exported_one(learn, mnist_dls, tmp_path):
    items = list(mnist_dls.valid_ds.items)[:8]
    before = learn.get_preds(dl=mnist_dls.test_dl(items))[0]
    loaded = load_learner(learn.export(tmp_path / "ce.pipekit"))
    assert type(loaded.loss_func) is nn.CrossEntropyLoss and loaded.loss_func.label_smoothing == 0.1
    # the model's outputs, as before the export (a torch loss activates nothing): not the default loss's softmax
    torch.testing.assert_close(loaded.get_preds(dl=loaded.dls.test_dl(items))[0], before)
    assert loaded.predict(items[0])[0] == learn.predict(items[0])[0]
    labelled = mnist_dls.test_dl(items, with_labels=True)
    assert loaded.validate(dl=labelled)[0] == pytest.approx(learn.validate(dl=labelled)[0], rel=1e-5)


@pytest.mark.parametrize("edit, named", [
    (lambda r: r["torch_loss"].update({"class": "Module"}), "torch_loss.class"),
    (lambda r: r["torch_loss"].update({"class": "os.system"}), "torch_loss.class"),
    (lambda r: r["torch_loss"]["params"].update({"weight": [1.0, 2.0]}), "torch_loss.params"),
    (lambda r: r["torch_loss"]["params"].update({"reduction": "everything"}), "torch_loss.params.reduction"),
    (lambda r: r["torch_loss"]["params"].update({"label_smoothing": "0.1"}), "torch_loss.params.label_smoothing"),
    (lambda r: r.update({"torch_loss": ["CrossEntropyLoss"]}), "torch_loss"),
], ids=["not_a_loss", "a_function", "unlisted_argument", "reduction", "wrong_type", "not_an_object"])
def test_a_crafted_torch_loss_record_is_refused_by_name(learn, tmp_path, edit, named):
    good = learn.export(tmp_path / "ce.pipekit")
    refused_quickly(load_learner, edited_copy(good, edit, tmp_path / "bad.pipekit"), named=(named,))


def test_a_torch_loss_export_whose_head_does_not_fit_the_classes_is_refused(mnist_dls, tmp_path):
    wrong = Learner(mnist_dls, simple_cnn(1, 5, (4, 8)), loss_func=nn.CrossEntropyLoss())  # 5 scores, 2 classes
    refused_quickly(load_learner, wrong.export(tmp_path / "wrong.pipekit"), named=("gives 2 classes", "5 scores"))
