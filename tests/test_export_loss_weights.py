"""A learner trained with one of PyTorch's own losses holding class weights (``nn.CrossEntropyLoss(weight=...)``,
``nn.BCEWithLogitsLoss(pos_weight=...)``) exports them with the loss: loaded in a fresh process it has the same
loss, predicts the same outputs and labels and scores the same; a crafted weights record is refused by name, and
weights a file cannot hold are refused at export. A multi-label target whose loss gives no activation reads its
labels from the sigmoid of the outputs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import pipekit
import pipekit.datasets as D
from file_edits import edited_copy, refused_quickly
from pipekit.core import ExportError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, MultiCategoryBlock, get_image_files, parent_label
from pipekit.learn import Learner, load_learner, simple_cnn
from pipekit.vision import ImageBlock

pytestmark = pytest.mark.data

# each weighted loss, the target block it trains, and its weights (as the loaded loss must hold them)
LOSSES = {
    "ce_weight": (CategoryBlock, lambda: nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0])), "weight"),
    "nll_weight": (CategoryBlock, lambda: nn.NLLLoss(weight=torch.tensor([2.0, 0.5])), "weight"),
    "bce_pos_weight": (lambda: MultiCategoryBlock(label_delim=" "),
                       lambda: nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.5])), "pos_weight"),
    "bce_weight": (lambda: MultiCategoryBlock(label_delim=" "),
                   lambda: nn.BCEWithLogitsLoss(weight=torch.tensor([0.75, 1.5])), "weight"),
}


def _dls(block):
    # an eighth of mnist_tiny's 3s and 7s; a multi-label target reads each item's folder as its one label
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), block()), get_items=lambda p: get_image_files(p)[::8],
                       get_y=parent_label, splitter=GrandparentSplitter())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return dblock.dataloaders(D.path("mnist_tiny"), bs=16, seed=0, device="cpu", num_workers=0)


@pytest.fixture(scope="module")
def dls():
    return {"category": _dls(CategoryBlock), "multi": _dls(lambda: MultiCategoryBlock(label_delim=" "))}


def _learner(dls, which):
    block, loss, _ = LOSSES[which]
    pipekit.set_seed(0)
    return Learner(dls["category" if block is CategoryBlock else "multi"], simple_cnn(1, 2, (4, 8)), loss_func=loss())


@pytest.fixture(scope="module")
def exported(dls, tmp_path_factory):
    """Each weighted loss's learner trained an epoch and exported, what it gives before the export, and what the
    export loaded in one fresh process gives."""
    out = tmp_path_factory.mktemp("loss_weights")
    before, files, items = {}, {}, {}
    for which in LOSSES:
        learn = _learner(dls, which)
        learn.fit(1, 1e-3)
        its = [str(f) for f in list(learn.dls.valid_ds.items)[:8]]
        labelled = learn.dls.test_dl(its, with_labels=True)
        label, dec, probs = learn.predict(its[0])
        before[which] = {"preds": learn.get_preds(dl=learn.dls.test_dl(its))[0].tolist(), "label": label,
                         "dec": dec.tolist(), "probs": probs.tolist(), "validate": learn.validate(dl=labelled)[0]}
        files[which], items[which] = str(learn.export(out / f"{which}.pipekit")), its
    script = (
        "import json, sys, torch\nimport pipekit\n"
        # the same thread count as this process: a matmul split differently rounds differently
        f"torch.set_num_threads({torch.get_num_threads()})\n"
        f"files, items = {files!r}, {items!r}\n"
        "res = {}\n"
        "for which, path in files.items():\n"
        "    learn = pipekit.load_learner(path)\n"
        "    its, loss = items[which], learn.loss_func\n"
        "    label, dec, probs = learn.predict(its[0])\n"
        "    res[which] = {'loss': type(loss).__name__,\n"
        "                  'weights': {k: getattr(loss, k).tolist() for k in ('weight', 'pos_weight')\n"
        "                              if getattr(loss, k, None) is not None},\n"
        "                  'preds': learn.get_preds(dl=learn.dls.test_dl(its))[0].tolist(), 'label': label,\n"
        "                  'dec': dec.tolist(), 'probs': probs.tolist(),\n"
        "                  'validate': learn.validate(dl=learn.dls.test_dl(its, with_labels=True))[0]}\n"
        "print(json.dumps(res))\n")
    repo = str(Path(__file__).resolve().parents[1])  # this checkout, whatever the installed copy is
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                         cwd=str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    return before, json.loads(res.stdout.strip().splitlines()[-1]), {k: Path(v) for k, v in files.items()}


@pytest.mark.parametrize("which", list(LOSSES))
def test_a_weighted_torch_loss_is_exported_with_its_weights(exported, which):
    before, after, _ = exported
    _, make, name = LOSSES[which]
    loss = make()
    got = after[which]
    assert got["loss"] == type(loss).__name__  # not the targets' default loss (CrossEntropyLossFlat, BCE...Flat)
    assert got["weights"] == {name: getattr(loss, name).tolist()}
    # the model's outputs, as before the export: not the default loss's softmax or sigmoid
    np.testing.assert_allclose(got["preds"], before[which]["preds"], rtol=1e-5, atol=1e-6)
    assert got["label"] == before[which]["label"]
    np.testing.assert_allclose(got["dec"], before[which]["dec"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["probs"], before[which]["probs"], rtol=1e-5, atol=1e-6)
    assert got["validate"] == pytest.approx(before[which]["validate"], rel=1e-5)


def _weights(r):
    return r["torch_loss"]["params"]["weight"]


@pytest.mark.parametrize("edit, named", [
    (lambda r: r["torch_loss"]["params"].update({"weight": [1.0, 3.0]}), "'torch_loss.params.weight'"),
    (lambda r: _weights(r).update({"values": [1.0, float("nan")]}), "'torch_loss.params.weight.values'"),
    (lambda r: _weights(r).update({"values": [1.0, 1e39]}), "'torch_loss.params.weight.values'"),  # inf as float32
    (lambda r: _weights(r).update({"values": [1.0, "3"]}), "'torch_loss.params.weight.values'"),
    (lambda r: _weights(r).update({"values": [1.0, True]}), "'torch_loss.params.weight.values'"),
    (lambda r: _weights(r).update({"shape": [100_001], "values": [1.0] * 100_001}), "'torch_loss.params.weight"),
    (lambda r: _weights(r).update({"shape": [10**12]}), "'torch_loss.params.weight.shape'"),
    (lambda r: _weights(r).update({"shape": [3]}), "'torch_loss.params.weight.values'"),
    (lambda r: _weights(r).update({"shape": "2"}), "'torch_loss.params.weight.shape'"),
    (lambda r: _weights(r).update({"shape": [3], "values": [1.0, 1.0, 1.0]}), "3 weights for 2 classes"),
    (lambda r: _weights(r).update({"shape": [1, 2]}), "'torch_loss.params.weight' has shape [1, 2]"),
    (lambda r: _weights(r).update({"values": [1.0, -3.0]}), "'torch_loss.params.weight' holds a weight below zero"),
    (lambda r: r["torch_loss"]["params"].update({"pos_weight": {"shape": [2], "values": [1.0, 1.0]}}),
     "'torch_loss.params' has 'pos_weight'"),
], ids=["a_list", "nan", "too_large_for_float32", "a_string", "a_bool", "huge", "huge_shape", "shape_mismatch",
        "shape_not_a_list", "another_count_than_the_classes", "two_dimensions", "negative", "unlisted_argument"])
def test_a_crafted_loss_weights_record_is_refused_by_name(exported, tmp_path, edit, named):
    good = exported[2]["ce_weight"]
    refused_quickly(load_learner, edited_copy(good, edit, tmp_path / "bad.pipekit"), named=(named,))


def test_crafted_bce_weights_that_do_not_fit_the_labels_are_refused(exported, tmp_path):
    good = exported[2]["bce_pos_weight"]

    def rows(r):  # one weight per row of outputs, not per label: broadcast, it would weigh other outputs
        r["torch_loss"]["params"]["pos_weight"] = {"shape": [2, 1], "values": [1.0, 2.5]}

    refused_quickly(load_learner, edited_copy(good, rows, tmp_path / "rows.pipekit"),
                    named=("'torch_loss.params.pos_weight' has shape [2, 1]",))

    def three(r):
        r["torch_loss"]["params"]["pos_weight"] = {"shape": [3], "values": [1.0, 2.5, 1.0]}

    refused_quickly(load_learner, edited_copy(good, three, tmp_path / "three.pipekit"),
                    named=("'torch_loss.params.pos_weight' holds 3 weights for 2 classes",))


@pytest.mark.parametrize("weight, named", [
    (torch.tensor([1.0, float("nan")]), "not finite"),
    (torch.ones(100_001), "100,001 values"),
    (torch.tensor([1.0, -1.0]), "below zero"),
], ids=["nan", "huge", "negative"])
def test_weights_a_file_cannot_hold_are_refused_at_export(dls, tmp_path, weight, named):
    learn = Learner(dls["category"], simple_cnn(1, 2, (4, 8)), loss_func=nn.CrossEntropyLoss(weight=weight))
    with pytest.raises(ExportError, match=r"nn.CrossEntropyLoss\(weight=...\)") as e:
        learn.export(tmp_path / "bad.pipekit")
    assert named in str(e.value)
    assert not (tmp_path / "bad.pipekit").exists()


def _fixed_outputs(learn, outputs):
    """The learner's model made to give ``outputs`` for every image (its last layer: zero weights, that bias)."""
    head = [m for m in learn.model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor(outputs))


def test_multi_label_outputs_of_a_loss_without_activation_are_thresholded_as_probabilities(dls):
    learn = Learner(dls["multi"], simple_cnn(1, 2, (4, 8)), loss_func=nn.BCEWithLogitsLoss())
    _fixed_outputs(learn, [0.05, -0.05])  # probabilities 0.51 and 0.49
    item = str(learn.dls.valid_ds.items[0])
    labels, dec, probs = learn.predict(item)
    assert labels == ["3"]
    # what fastai returns with a loss that activates nothing: the outputs themselves
    torch.testing.assert_close(dec, torch.tensor([0.05, -0.05]))
    torch.testing.assert_close(probs, torch.tensor([0.05, -0.05]))
    # the interpretation reads the same labels: the first over 0.5 of its probability, the second not
    from pipekit.learn import ClassificationInterpretation

    interp = ClassificationInterpretation.from_learner(learn)
    assert interp.decoded.dtype == torch.bool and interp.decoded[:, 0].all() and not interp.decoded[:, 1].any()


def test_multi_label_outputs_of_a_loss_reading_probabilities_are_thresholded_as_they_are(dls):
    # nn.BCELoss reads probabilities (a model ending in a sigmoid): 0.4 is no label, though its sigmoid is 0.6
    learn = Learner(dls["multi"], simple_cnn(1, 2, (4, 8)), loss_func=nn.BCELoss())
    _fixed_outputs(learn, [0.6, 0.4])
    assert learn.predict(str(learn.dls.valid_ds.items[0]))[0] == ["3"]


@pipekit.learn.register_arch("test_sigmoid_cnn")
def sigmoid_cnn(n_out: int) -> nn.Module:
    """A small CNN ending in a sigmoid, as a model trained with nn.BCELoss ends."""
    return nn.Sequential(simple_cnn(1, n_out, (4, 8)), nn.Sigmoid())


def test_pytorchs_bce_loss_is_exported_by_name_and_a_plain_function_is_named_in_a_warning(dls, tmp_path):
    """A model ending in a sigmoid trained with ``nn.BCELoss`` loads with that loss: with the targets' default
    (BCEWithLogitsLossFlat) its outputs would go through a second sigmoid, and every label would be over 0.5."""
    learn = Learner(dls["multi"], sigmoid_cnn(2), loss_func=nn.BCELoss(weight=torch.tensor([1.0, 3.0])))
    learn.export(tmp_path / "bce.pkl")
    back = load_learner(tmp_path / "bce.pkl")
    assert type(back.loss_func) is nn.BCELoss and back.loss_func.weight.tolist() == [1.0, 3.0]
    item = str(learn.dls.valid_ds.items[0])
    assert back.predict(item)[0] == learn.predict(item)[0]
    torch.testing.assert_close(back.predict(item)[2], learn.predict(item)[2])

    def my_loss(out, targ):
        return nn.functional.binary_cross_entropy_with_logits(out, targ.float())

    plain = Learner(dls["multi"], simple_cnn(1, 2, (4, 8)), loss_func=my_loss)
    with pytest.warns(UserWarning, match=r"export: the loss 'my_loss' is not one a file can hold .*BCEWithLogitsLoss"
                                         r".*the loaded learner predicts with the targets' default loss"):
        plain.export(tmp_path / "plain.pkl")
