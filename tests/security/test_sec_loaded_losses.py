"""A learner export's loss, metrics and mask codes are checked as they are read.

A digit classifier (mnist_tiny) and a segmentation model (8 camvid_tiny images) are exported for real; copies with
one field of record.json edited must be refused with an :class:`ExportError` naming the file and what is wrong:
a loss ``axis``/``ignore_index`` or a metric ``axis`` that is no class axis (it used to fail inside torch at
predict), a segmentation loss over another axis than the channels (it used to load and softmax over the image's
width, probabilities summing to 0.68), and mask codes that are not distinct labels of one type (duplicates loaded,
and ``o2i`` gave one index for every name).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from file_edits import edited_copy

import pipekit.datasets as D
from pipekit.core import ExportError, ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, RandomSplitter, get_image_files, parent_label
from pipekit.learn import CrossEntropyLossFlat, load_learner
from pipekit.metrics import Accuracy, accuracy
from pipekit.vision import ImageBlock, MaskBlock, Resize, image_paths_with, unet_learner, vision_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DIGIT = D.path("mnist_tiny") / "valid" / "3" / "7006.png"
CAMVID = D.path("camvid_tiny")
SCENE = CAMVID / "images" / "0001TP_006750.png"


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("losses")
    db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::20],
                   get_y=parent_label, splitter=GrandparentSplitter(), item_tfms=Resize(28))
    digits = vision_learner(db.dataloaders(D.path("mnist_tiny"), bs=8, seed=0, device="cpu"), "simple_cnn",
                            metrics=[accuracy])
    codes = (CAMVID / "codes.txt").read_text().split()
    sb = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: get_image_files(p / "images")[:8],
                   get_y=image_paths_with(CAMVID / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                   splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize((32, 48))])
    seg = unet_learner(sb.dataloaders(CAMVID, bs=4, seed=0, device="cpu"), "simple_cnn")
    return {"digits": digits.export(d / "digits.pipekit"), "seg": seg.export(d / "seg.pipekit")}


def _loss(key: str, value):
    def edit(rec):
        rec["loss"]["params"][key] = value
    return edit


def _metric_axis(value):
    def edit(rec):
        rec["metrics"][0]["params"]["axis"] = value
    return edit


def _codes(value):
    def edit(rec):
        rec["dls"]["recipe"]["state"]["blocks_"][1]["params"]["codes"] = value
    return edit


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(ExportError) as e:
        load_learner(path)
    msg = str(e.value)
    assert msg.startswith(str(path)), msg
    for w in words:
        assert w in msg, msg
    return msg


CLASS_AXIS = "the class axis of the outputs"
LABELS = "distinct labels of one type"
CASES = {
    "loss axis text": ("digits", _loss("axis", "x"), ("field 'loss'", "axis='x'", CLASS_AXIS)),
    "loss axis past the outputs": ("digits", _loss("axis", 5), ("axis=5", CLASS_AXIS)),
    "loss axis the batch": ("digits", _loss("axis", 0), ("axis=0", CLASS_AXIS)),
    "loss axis a bool": ("digits", _loss("axis", True), ("axis=True", CLASS_AXIS)),
    "loss axis a float": ("digits", _loss("axis", 1.0), ("axis=1.0", CLASS_AXIS)),
    "loss ignore_index text": ("digits", _loss("ignore_index", "x"), ("ignore_index='x'", "an integer")),
    "loss ignore_index a float": ("digits", _loss("ignore_index", 0.5), ("ignore_index=0.5",)),
    "metric axis text": ("digits", _metric_axis("x"), ("field 'metrics[0]'", "Accuracy: axis='x'", CLASS_AXIS)),
    "metric axis past the outputs": ("digits", _metric_axis(5), ("axis=5", CLASS_AXIS)),
    "mask loss over the width": ("seg", _loss("axis", -1), ("field 'loss.params.axis' is -1", "axis 1")),
    "mask loss over the height": ("seg", _loss("axis", 2), ("field 'loss.params.axis' is 2", "axis 1")),
    "codes twice": ("seg", _codes(["Sky"] * 32), ("MaskBlock: codes=", LABELS)),
    "codes of mixed types": ("seg", _codes([1, "a", None, 2.5] + [f"c{i}" for i in range(28)]), (LABELS,)),
    "codes unhashable": ("seg", _codes([[1], {"a": 1}] + [[i] for i in range(30)]), (LABELS,)),
    "codes with a missing one": ("seg", _codes([None] + [f"c{i}" for i in range(31)]), (LABELS,)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sec_a_malformed_loss_metric_or_codes_is_refused(exports, tmp_path, case):
    name, edit, words = CASES[case]
    _refused(edited_copy(exports[name], edit, tmp_path / f"{name}.pipekit"), *words)


def test_sec_exports_as_written_still_predict(exports):
    """The checks refuse nothing learn.export writes: the mask's class probabilities sum to 1 at every pixel (over
    the channels), and the codes come back as the names given, each with its own index."""
    seg = load_learner(exports["seg"])
    assert seg.loss_func.axis == 1
    _, _, probs = seg.predict(SCENE)
    assert probs.shape[0] == 32 and torch.allclose(probs.sum(0), torch.ones(probs.shape[1:]), atol=1e-5)
    codes = (CAMVID / "codes.txt").read_text().split()
    assert list(seg.dls.vocab) == codes and [seg.dls.vocab.o2i[c] for c in codes] == list(range(32))
    digits = load_learner(exports["digits"])
    _, _, p = digits.predict(DIGIT)
    assert p.shape == (2,) and abs(float(p.sum()) - 1) < 1e-5


def test_sec_axis_and_codes_given_in_code_are_checked_alike():
    """The same constraints hold for a loss, metric or block built in code; an axis the outputs do not have is
    named at predict instead of an IndexError from torch; NumPy text codes (np.loadtxt) are accepted as text."""
    import numpy as np

    for bad in ("x", 0, 9, True):
        with pytest.raises(ParameterError, match="axis="):
            CrossEntropyLossFlat(axis=bad)
        with pytest.raises(ParameterError, match="axis="):
            Accuracy(axis=bad)
    with pytest.raises(ParameterError, match="ignore_index="):
        CrossEntropyLossFlat(ignore_index="x")
    with pytest.raises(ParameterError, match=r"axis=3 is not an axis of the model's outputs of shape \(4, 2\)"):
        CrossEntropyLossFlat(axis=3).activation(torch.zeros(4, 2))
    assert CrossEntropyLossFlat(axis=1).activation(torch.zeros(4, 2)).sum(1).allclose(torch.ones(4))
    with pytest.raises(ParameterError, match=LABELS):
        MaskBlock(codes=["road", "road"])
    assert MaskBlock(codes=np.array(["road", "sky"])).codes == ["road", "sky"]
    assert MaskBlock(codes=[0, 1, 2]).codes == ["0", "1", "2"]
