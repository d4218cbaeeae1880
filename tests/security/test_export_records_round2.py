"""A learner export's record, read field by field: what a crafted file may no longer ask for, and what a genuine
export of a user's transform no longer loses.

Digit classifiers on mnist_tiny are exported for real (one with ``nn.CrossEntropyLoss(weight=...)``, a multi-label one
with ``nn.BCEWithLogitsLoss()``, one with a user's ``RandTransform`` given fastai's ``split_idx``/``order``/``p``
through ``**kwargs``); copies with record.json edited must be refused with an :class:`ExportError` naming the file and
the field:

- an older file (format 3) is rewritten by each class's ``upgrade_record`` as it is read: each class name is looked up
  once, however many records name it, and a name that is not registered costs no error message (20,000 junk records
  were 20,000 lookups and 20,000 sorted lists of every registered name); a field a learner export does not hold is
  refused, where it was read past;
- ``split_idx``, ``order`` and ``p`` passed on to ``RandTransform.__init__`` through a subclass's ``**kwargs`` are kept
  (the loaded transform ran on training items only, so ``predict`` no longer applied it);
- a RandTransform's ``before_call`` and a ``Transform(f)``'s ``enc`` name a registered function, never a module class,
  a getter class or a transform class (``torch.nn.Linear`` was built from every item);
- one of PyTorch's losses holds arguments in the ranges torch takes, weights not all zero, only the fields an export
  writes, and a class that reads the targets (``BCELoss`` on class indices failed at the first loss, in torch's words);
- a crop ``ratio`` with an infinite bound, and a whole number too large for a float, are refused naming the parameter;
- ``hasattr(img, "load")`` on an image is False (it raised).
"""
from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from file_edits import component_records, edited_copy
from torch import nn

import pipekit
import pipekit.core.component as component
import pipekit.datasets as D
from pipekit.core import Component, ExportError, Interval, ParameterError, UnknownNameError, check
from pipekit.data import (CategoryBlock, DataBlock, GrandparentSplitter, MultiCategoryBlock, RandTransform, Transform,
                          get_image_files, parent_label)
from pipekit.learn import Learner, load_learner, simple_cnn
from pipekit.vision import ImageBlock, PILImage, RandomResizedCrop

pytestmark = [pytest.mark.data, pytest.mark.usefixtures("one_torch_thread")]

DIGIT = D.path("mnist_tiny") / "valid" / "3" / "7006.png"
BRIGHTEN = "tests.security.round2.Brighten"


class Brighten(RandTransform):
    """A user's transform as fastai's are written: fastai's keywords go on to RandTransform through ``**kwargs``."""

    def __init__(self, amount=120, **kwargs):
        super().__init__(**kwargs)
        self.amount = amount

    def encodes(self, x: PILImage):
        return np.clip(x.astype(np.int16) + self.amount, 0, 255).astype(np.uint8)


def same(x):
    """A user's item function, registered so a file may name it."""
    return x


def draw(b, split_idx=None):
    """A user's before_call, registered so a file may name it."""


pipekit.register(Brighten, name=BRIGHTEN)
pipekit.register(same, name="tests.security.round2.same", kind="function")
pipekit.register(draw, name="tests.security.round2.draw", kind="function")


def _dls(block, item_tfms=()):
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), block), get_items=lambda p: get_image_files(p)[::8],
                       get_y=parent_label, splitter=GrandparentSplitter(), item_tfms=list(item_tfms))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return dblock.dataloaders(D.path("mnist_tiny"), bs=16, seed=0, device="cpu", num_workers=0)


@pytest.fixture(scope="module")
def learners():
    pipekit.set_seed(0)
    digits = Learner(_dls(CategoryBlock), simple_cnn(1, 2, (4, 8)),
                     loss_func=nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0])))
    multi = Learner(_dls(MultiCategoryBlock(label_delim=" ")), simple_cnn(1, 2, (4, 8)), loss_func=nn.BCEWithLogitsLoss())
    tfms = [RandomResizedCrop(28, min_scale=0.5), Brighten(amount=120, split_idx=1, order=5), Brighten(amount=0, p=0.25),
            Transform(same), RandTransform(before_call=draw)]
    user = Learner(_dls(CategoryBlock, tfms), simple_cnn(1, 2, (4, 8)))
    return {"digits": digits, "multi": multi, "user": user}


@pytest.fixture(scope="module")
def exports(learners, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("round2")
    return {k: learn.export(d / f"{k}.pipekit") for k, learn in learners.items()}


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(ExportError) as e:
        load_learner(path)
    msg = str(e.value)
    assert msg.startswith(str(path)), msg
    for w in words:
        assert w in msg, msg
    return msg


def _older(path: Path, out: Path, edit=lambda rec: None, version: int = 3) -> Path:
    """A copy of the export ``path`` whose manifest says format ``version``, its record edited by ``edit``."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    record = json.loads(members["record.json"])
    edit(record)
    members["record.json"] = json.dumps(record).encode()
    members["manifest.json"] = json.dumps({**json.loads(members["manifest.json"]), "version": version}).encode()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out


def _spy_lookups(monkeypatch) -> tuple[list[str], list[str]]:
    """Every name ``upgrade`` (core.component) looks up in the registry, and those whose lookup raised an error."""
    calls: list[str] = []
    raised: list[str] = []
    real = component.lookup

    def spy(name, *args, **kwargs):
        calls.append(name)
        try:
            return real(name, *args, **kwargs)
        except UnknownNameError:
            raised.append(name)
            raise
    monkeypatch.setattr(component, "lookup", spy)
    return calls, raised


# ------------------------------------------------------------------------------------- 1. older files, extra fields
def test_an_older_file_looks_each_class_name_up_once(exports, tmp_path, monkeypatch):
    """20,000 records of one unregistered class in an older file: one lookup (there were 20,000, each scanning the
    registry nine times and sorting every registered name for a message thrown away); the field is then refused."""
    def junk(rec):
        rec["junk"] = [{"class": "x", "params": {}} for _ in range(20_000)]
    path = _older(exports["user"], tmp_path / "older.pipekit", junk)
    calls, raised = _spy_lookups(monkeypatch)
    _refused(path, "field 'junk'", "learner export does not hold")
    assert calls.count("x") == 1 and not raised
    # each of the real record's classes once too, however many records name it
    assert len(calls) == len(set(calls)) and "pipekit.vision.RandomResizedCrop" in calls


def test_an_older_file_of_many_unregistered_names_builds_no_messages(exports, tmp_path, monkeypatch):
    """20,000 distinct names (short ones, as pipekit 0.1 wrote them): each looked up once, none raising an error."""
    def junk(rec):
        rec["junk"] = [{"class": f"X{i}", "params": {}} for i in range(20_000)]
    path = _older(exports["digits"], tmp_path / "older.pipekit", junk)
    calls, raised = _spy_lookups(monkeypatch)
    _refused(path, "field 'junk'")
    assert len([c for c in calls if c.startswith("X")]) == 20_000 and not raised


def test_an_older_file_as_written_still_loads(learners, exports, tmp_path):
    """The upgrade still rewrites what it must (a format-3 RandomResizedCrop loads with whole_image=False)."""
    def as_format_3(rec):
        for r in component_records(rec, "pipekit.vision.RandomResizedCrop"):
            for name in ("whole_image", "val_xtra", "max_scale"):
                r["params"].pop(name, None)
    back = load_learner(_older(exports["user"], tmp_path / "v3.pipekit", as_format_3))
    crops = [t for b in back.dls.recipe.fitted_blocks for t in b.tfms_ if isinstance(t, RandomResizedCrop)]
    assert crops and not any(t.whole_image for t in crops)


@pytest.mark.parametrize("field", ["junk", "torch_version", "format"])
def test_a_field_a_learner_export_does_not_hold_is_refused(exports, tmp_path, field):
    def edit(rec):
        rec[field] = 1
    _refused(edited_copy(exports["digits"], edit, tmp_path / "extra.pipekit"), f"field {field!r}",
             "a learner export does not hold")


def test_genuine_exports_load_and_predict(learners, exports):
    for name, path in exports.items():
        back = load_learner(path)
        assert torch.allclose(back.predict(DIGIT)[2], learners[name].predict(DIGIT)[2]), name
    assert load_learner(exports["digits"]).loss_func.weight.tolist() == [1.0, 3.0]


# ---------------------------------------------------------------------- 2. fastai's keywords through **kwargs
def test_split_idx_order_and_p_given_through_kwargs_are_kept(learners, exports):
    """The user's Brighten(split_idx=1, order=5) loaded as Brighten(split_idx=0, order=0): a correction for validation
    and new images ran on training images only, and predict no longer applied it."""
    rec = json.loads(zipfile.ZipFile(exports["user"]).read("record.json"))
    held = list(component_records(rec, BRIGHTEN))
    assert held and all(r["params"] in ({"amount": 120, "split_idx": 1, "order": 5}, {"amount": 0, "p": 0.25})
                        for r in held)
    back = load_learner(exports["user"])
    tfms = [t for b in back.dls.recipe.fitted_blocks for t in b.tfms_ if isinstance(t, Brighten)]
    assert {(t.amount, t.split_idx, t.order, t.p) for t in tfms} == {(0, 0, 0, 0.25), (120, 1, 5, 1.0)}
    x = back.dls.test_dl([DIGIT]).one_batch()[0]
    assert torch.equal(x, learners["user"].dls.test_dl([DIGIT]).one_batch()[0])
    assert float(x.min()) >= 120 / 255 - 1e-6  # brightened, as the exported learner's new items are


def test_passed_on_keywords_and_before_call_round_trip_and_are_checked():
    t = Brighten(amount=3, split_idx=1, order=2, p=0.5, before_call=draw)
    back = Component.from_record(t.to_record())
    assert (back.amount, back.split_idx, back.order, back.p, back.before_call_fn) == (3, 1, 2, 0.5, draw)
    assert Brighten().to_record()["params"] == {"amount": 120}  # nothing given: the record is as it was
    for key, value in (("split_idx", 2), ("order", 1.5), ("p", 2.0)):
        rec = t.to_record()
        rec["params"][key] = value
        with pytest.raises(ExportError, match=f"{key}={value}"):
            Component.from_record(rec)


# -------------------------------------------------------------------------- 3. functions a transform calls
def _each(cls: str, key: str, value):
    def edit(rec):
        found = list(component_records(rec, cls))
        assert found
        for r in found:
            r["params"][key] = value
    return edit


RAND = "pipekit.data.RandTransform"
REFS = {
    "before_call a torch module": (RAND, "before_call", "torch.nn.Linear", "registered function"),
    "before_call the item finder": (RAND, "before_call", "pipekit.data.get_files", "registered function"),
    "before_call a transform class": (RAND, "before_call", "pipekit.data.Transform", "registered function"),
    "before_call a getter class": (RAND, "before_call", "pipekit.data.ColReader", "registered function"),
    "a user's before_call a torch module": (BRIGHTEN, "before_call", "torch.nn.Linear", "registered function"),
    "enc a getter class": ("pipekit.data.FuncTransform", "enc", "pipekit.data.Pipe", "is the class Pipe"),
    "enc a torch module": ("pipekit.data.FuncTransform", "enc", "torch.nn.Linear", "registered function"),
    "dec a transform class": ("pipekit.data.FuncTransform", "dec", "pipekit.vision.Albumentations",
                              "registered function"),
}


@pytest.mark.parametrize("case", list(REFS))
def test_a_transforms_function_names_a_function(exports, tmp_path, case):
    cls, key, name, words = REFS[case]
    path = edited_copy(exports["user"], _each(cls, key, {"__ref__": name}), tmp_path / "ref.pipekit")
    _refused(path, f"params.{key}'", words)


def test_a_function_registered_as_such_still_loads(exports, tmp_path):
    """A registered function of the user's stands in before_call, of pipekit's RandTransform and of a user's subclass
    passing it on through ``**kwargs``."""
    path = edited_copy(exports["user"], _each(BRIGHTEN, "before_call", {"__ref__": "tests.security.round2.draw"}),
                       tmp_path / "draw.pipekit")
    tfms = [t for b in load_learner(path).dls.recipe.fitted_blocks for t in b.tfms_ if isinstance(t, RandTransform)]
    assert len({id(t) for t in tfms}) >= 3 and all(t.before_call_fn is draw for t in tfms)


# ------------------------------------------------------------------------------------ 4. PyTorch's own losses
def _torch_loss(cls=None, **params):
    """The export's torch loss with ``params`` changed, or, given ``cls``, that class with only ``params``."""
    def edit(rec):
        if cls is not None:
            rec["torch_loss"] = {"class": cls, "params": params}
        else:
            rec["torch_loss"]["params"].update(params)
    return edit


def _extra_key(rec):
    rec["torch_loss"]["extra"] = 1


def _weight(**record):
    def edit(rec):
        rec["torch_loss"]["params"]["weight"] = {"shape": [2], "values": [1.0, 3.0], **record}
    return edit


def _both(rec):
    rec["loss"] = {"class": "pipekit.learn.CrossEntropyLossFlat", "params": {}, "state": {}}


LOSSES = {
    "label_smoothing 5": ("digits", _torch_loss(label_smoothing=5.0), ("torch_loss.params.label_smoothing",
                                                                       "from 0 to 1")),
    "label_smoothing -0.5": ("digits", _torch_loss(label_smoothing=-0.5), ("label_smoothing", "from 0 to 1")),
    "ignore_index 2**70": ("digits", _torch_loss(ignore_index=2**70), ("torch_loss.params.ignore_index", "int64")),
    "weights all zero": ("digits", _weight(values=[0.0, 0.0]), ("torch_loss.params.weight", "sum to 0")),
    "weights with a dtype": ("digits", _weight(dtype="float64"), ("torch_loss.params.weight", "'dtype'")),
    "an unknown key": ("digits", _extra_key, ("field 'torch_loss'", "'extra'")),
    "BCELoss on class indices": ("digits", _torch_loss("BCELoss"), ("BCELoss", "cannot read the targets",
                                                                    "'cross_entropy'")),
    "MSELoss on class indices": ("digits", _torch_loss("MSELoss"), ("MSELoss", "cannot read the targets")),
    "NLLLoss on multi-label targets": ("multi", _torch_loss("NLLLoss"), ("NLLLoss", "'bce'")),
    "SmoothL1Loss beta below 0": ("multi", _torch_loss("SmoothL1Loss", beta=-1.0), ("torch_loss.params.beta",
                                                                                    "at least 0")),
    "HuberLoss delta 0": ("multi", _torch_loss("HuberLoss", delta=0), ("torch_loss.params.delta", "above 0")),
    "HuberLoss delta 10**400": ("multi", _torch_loss("HuberLoss", delta=10**400), ("torch_loss.params.delta",
                                                                                   "finite")),
    "a loss beside a torch_loss": ("digits", _both, ("'loss' and 'torch_loss'",)),
}


@pytest.mark.parametrize("case", list(LOSSES))
def test_a_torch_loss_is_checked_as_pipekits_own_are(exports, tmp_path, case):
    name, edit, words = LOSSES[case]
    _refused(edited_copy(exports[name], edit, tmp_path / f"{name}.pipekit"), *words)


def test_a_torch_loss_the_targets_take_still_loads(exports, tmp_path):
    path = edited_copy(exports["multi"], _torch_loss("HuberLoss", delta=0.5), tmp_path / "huber.pipekit")
    back = load_learner(path)
    assert type(back.loss_func) is nn.HuberLoss and back.loss_func.delta == 0.5


# ------------------------------------------------------------------------ 5, 6. numbers a float cannot hold
def test_a_crop_ratio_must_be_finite(exports, tmp_path):
    with pytest.raises(ParameterError, match="ratio=.*finite"):
        RandomResizedCrop(24, ratio=(1e-300, float("inf")))
    path = edited_copy(exports["user"], _each("pipekit.vision.RandomResizedCrop", "ratio", [1e-300, float("inf")]),
                       tmp_path / "ratio.pipekit")
    _refused(path, "RandomResizedCrop", "ratio=", "finite")


def test_a_whole_number_too_large_for_a_float_is_refused_by_name(exports, tmp_path):
    with pytest.raises(ParameterError, match="beta=1000.*too large for a float"):
        check("FBeta", beta=(10**400, Interval(0, None, closed="neither")))
    path = edited_copy(exports["user"], _each("pipekit.vision.RandomResizedCrop", "val_xtra", 10**400),
                       tmp_path / "big.pipekit")
    _refused(path, "val_xtra=1000", "too large for a float")


# --------------------------------------------------------------------------------------- 7. duck typing an image
def test_hasattr_load_on_an_image_is_false():
    img = PILImage.create(DIGIT)
    assert not hasattr(img, "load") and getattr(img, "load", None) is None
    with pytest.raises(ParameterError, match="img.to_pil\\(\\).load\\(\\)") as e:
        img.load()
    assert isinstance(e.value, AttributeError)
