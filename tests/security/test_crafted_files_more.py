"""Crafted files each refused at load naming the file and the field (or said for what they are), while the genuine
files of the same real data still load and predict:

- the item finder get_files nested in a getter read from a file (``UsingAttr(f=get_files)``,
  ``Pipe(getters=[get_files])``), which would make predict list the folder of the user's image; a FuncMetric whose
  function is get_files, or a class;
- an encoder file given to ``TextLearner.load_encoder`` with missing, extra, reshaped, integer, complex or NaN
  weights, checked whole before the learner's weights change; ``pipekit.load`` of the same files;
- a block's fitted transforms emptied, doubled, cut or reordered (predict would label every item 0, or fail);
- a ``pretrained=`` weights file that is cut short, empty or not safetensors, or holds NaN or integer weights; one
  lacking some of the body's tensors loads, with a warning naming those left at their random start;
- a checkpoint's parameter index written as a list;
- a loss's class weights of another count than the classes, NaN or negative;
- a torch.save file (fastai's export.pkl) given to load_learner is said to be a pickle file whatever its layout, and
  ``pipekit.save`` of a scikit-learn Pipeline or search says how to save the pipekit estimator it holds.
"""
from __future__ import annotations

import json
import math
import warnings
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from safetensors.torch import save_file

import pipekit
import pipekit.datasets as D
from pipekit.core import ExportError
from pipekit.core.errors import DataError
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock
from pipekit.data.seed import set_seed
from pipekit.data.splitters import RandomSplitter
from pipekit.learn import Learner, load_learner, simple_cnn
from pipekit.tabular import Tabular, tabular_learner
from pipekit.text import AWD_LSTM, TextBlock, text_classifier_learner
from pipekit.vision import load_body_weights, vision_learner
from file_edits import edited_copy, refused_quickly

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CATS = ["workclass", "education", "marital-status"]
CONTS = ["age", "fnlwgt", "education-num"]
ENC_CONFIG = dict(emb_sz=16, n_hid=32, n_layers=2)
GET_FILES = {"__ref__": "pipekit.data.get_files"}


def share_right(pred, targ):
    """A user's metric function, registered: a file may name it as a FuncMetric's function."""
    return (pred.argmax(1) == targ).float().mean()


pipekit.register(share_right, name="tests.security.crafted_more.share_right", kind="function")


def _getter(cls: str, **params) -> dict:
    return {"class": f"pipekit.data.{cls}", "params": params, "state": {}}


def _state(rec):
    return rec["dls"]["recipe"]["state"]


def _with_weights(path: Path, edit, out: Path) -> Path:
    """The pipekit file ``path`` with ``edit(tensors)`` applied to its weights.safetensors, written to ``out``."""
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    tensors = dict(st_load(files["weights.safetensors"]))
    edit(tensors)
    files["weights.safetensors"] = st_save({k: v.contiguous() for k, v in tensors.items()})
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out


# ------------------------------------------------------------------------------------------------ real files
@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("crafted_more")


@pytest.fixture(scope="module")
def vision_export(mnist_dls, out) -> Path:
    learn = Learner(mnist_dls, simple_cnn(n_in=1, n_out=mnist_dls.c, channels=(4, 8)), metrics=[share_right])
    return learn.export(out / "vision.pipekit")


@pytest.fixture(scope="module")
def image() -> str:
    return str(sorted((D.path("mnist_tiny") / "valid" / "3").glob("*.png"))[0])


@pytest.fixture(scope="module")
def text_dls(out):
    texts = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    texts = pl.concat([texts.filter(~pl.col("is_valid")).head(40), texts.filter(pl.col("is_valid")).head(10)])
    return DataBlock(blocks=(TextBlock.from_df("text"), CategoryBlock), get_x=ColReader("text"),
                     get_y=ColReader("label"), splitter=ColSplitter("is_valid")).dataloaders(texts, bs=16, seed=42,
                                                                                             path=out)


def _text_learner(text_dls):
    return text_classifier_learner(text_dls, AWD_LSTM, config=ENC_CONFIG, pretrained=False)


@pytest.fixture(scope="module")
def text_files(text_dls, out) -> dict[str, Path]:
    set_seed(0)
    learn = _text_learner(text_dls)
    learn.fit(1, 1e-2)
    return {"encoder": learn.save_encoder("enc"), "export": learn.export(out / "text.pipekit")}


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(D.path("adult_sample") / "adult.csv").head(1500)


@pytest.fixture(scope="module")
def tab_learner(adult, out):
    tab = Tabular(adult, cat_names=CATS, cont_names=CONTS, y_names="salary", splits=RandomSplitter(0.2, seed=42))
    set_seed(0)
    learn = tabular_learner(tab.dataloaders(bs=256, seed=0), layers=[8], path=out)
    learn.fit(1, 1e-2)
    return learn


@pytest.fixture(scope="module")
def tabular_export(tab_learner, out) -> Path:
    return tab_learner.export(out / "tabular.pipekit")


# ------------------------------------------------------------------------------- getters read from a file
def test_a_folder_lister_nested_in_a_files_getter_is_refused(vision_export, image, out):
    expected = load_learner(vision_export).predict(image)[0]
    using_attr = _getter("UsingAttr", f=GET_FILES, attr="parent")
    for name, getter, field, said in [
        ("using_attr", using_attr, "getters_[0].params.f", "lists the files of a folder"),
        ("pipe", _getter("Pipe", getters=[GET_FILES]), "getters_[0].params.getters[0]", "lists the files"),
        ("pipe_using_attr", _getter("Pipe", getters=[using_attr]), "getters_[0].params.getters[0].params.f",
         "lists the files of a folder"),
        ("image_files", _getter("UsingAttr", f={"__ref__": "pipekit.data.get_image_files"}, attr="parent"),
         "getters_[0].params.f", "lists the files of a folder"),
        ("class", _getter("UsingAttr", f={"__ref__": "pipekit.data.ColReader"}, attr="name"), "getters_[0].params.f",
         "builds an object when called"),
    ]:
        path = edited_copy(vision_export, lambda s, g=getter: s["getters_"].__setitem__(0, g),
                           out / f"nested_{name}.pipekit", part=_state)
        refused_quickly(load_learner, path, named=(f"field 'dls.recipe.state.{field}'", said))
    # getters nested the same way that read each item's value still load: the label through a Pipe is the label
    path = edited_copy(vision_export, lambda s: s["getters_"].__setitem__(1, _getter("Pipe", getters=[s["getters_"][1]])),
                       out / "pipe_parent_label.pipekit", part=_state)
    loaded = load_learner(path)
    assert type(loaded.dls.recipe.getters_[1]).__name__ == "Pipe"
    assert loaded.predict(image)[0] == expected


def test_a_metric_function_read_from_a_file_is_a_function(vision_export, out):
    back = load_learner(vision_export)  # the user's registered function comes back as the metric's function
    assert back.metrics[0].fn is share_right
    for name, fn, said in [("finder", GET_FILES, "is a registered getter"),
                           ("class", {"__ref__": "pipekit.metrics.AccuracyMulti"}, "builds an object when called")]:
        metric = {"class": "pipekit.metrics.FuncMetric", "params": {"fn": fn}, "state": {}}
        path = edited_copy(vision_export, lambda r, m=metric: r.__setitem__("metrics", [m]),
                           out / f"metric_{name}.pipekit")
        refused_quickly(load_learner, path, named=("field 'metrics[0].params.fn'", said))


# ------------------------------------------------------------------------------------------- encoder files
def _unchanged(learn, before) -> bool:
    return all(torch.equal(v, before[k]) for k, v in learn.model.state_dict().items())


def test_load_encoder_checks_the_whole_file_before_changing_the_learner(text_dls, text_files, out):
    enc = text_files["encoder"]
    vocab_sz = len(json.loads(zipfile.ZipFile(enc).read("record.json"))["vocab"])
    cases = {
        "no_embedding": (lambda t: t.pop("encoder.weight"), "shapes its config gives"),
        "extra_tensor": (lambda t: t.__setitem__("extra.bias", torch.zeros(3)), "shapes its config gives"),
        "narrow_embedding": (lambda t: t.__setitem__("encoder.weight", torch.zeros(vocab_sz, 8)),
                             "shapes its config gives"),
        "int64": (lambda t: t.update({k: v.to(torch.int64) for k, v in t.items()}), "int64 numbers"),
        "complex": (lambda t: t.update({k: v.to(torch.complex64) for k, v in t.items()}), "complex64 numbers"),
        "nan": (lambda t: t["encoder.weight"].__setitem__((5, 0), float("nan")), "not finite"),
    }
    for name, (edit, said) in cases.items():
        path = _with_weights(enc, edit, out / "models" / f"enc_{name}.pipekit")
        learn = _text_learner(text_dls)
        before = {k: v.clone() for k, v in learn.model.state_dict().items()}
        with pytest.raises(ExportError) as e:
            learn.load_encoder(path)
        assert str(path) in str(e.value) and said in str(e.value) and "save_encoder" in str(e.value), str(e.value)
        assert _unchanged(learn, before), name
        refused_quickly(pipekit.load, path, named=(said,))
    # the genuine file loads into a fresh classifier (its LSTM weights, and a row per token), and pipekit.load gives
    # its encoder
    learn, saved = _text_learner(text_dls).load_encoder(enc), pipekit.load(enc).state_dict()
    loaded = learn.encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items() if k != "encoder.weight")
    assert torch.equal(loaded["encoder.weight"][:100], saved["encoder.weight"][:100])


# ------------------------------------------------------------------------------------ fitted block transforms
def _set_tfms(block: int, make):
    return lambda s: s["blocks_"][block]["state"].__setitem__("tfms_", make(s["blocks_"][block]["state"]["tfms_"]))


def test_a_blocks_fitted_transforms_must_be_its_own(vision_export, text_files, image, out):
    assert load_learner(vision_export).predict(image)[0] in ("3", "7")
    assert load_learner(text_files["export"]).predict("a great movie, i loved it")[0] in ("positive", "negative")
    for source, name, block, make, said in [
        (vision_export, "target_empty", 1, lambda t: [], "holds [] where a fitted CategoryBlock encodes with "
                                                         "['Categorize']"),
        (vision_export, "target_doubled", 1, lambda t: t * 2, "holds ['Categorize', 'Categorize']"),
        (text_files["export"], "text_target_empty", 1, lambda t: [], "['Categorize']"),
        (text_files["export"], "text_empty", 0, lambda t: [], "a fitted TextBlock encodes with ['Tokenizer', "
                                                               "'Numericalize']"),
        (text_files["export"], "text_numericalize_only", 0, lambda t: t[1:], "holds ['Numericalize']"),
        (text_files["export"], "text_swapped", 0, lambda t: t[::-1], "holds ['Numericalize', 'Tokenizer']"),
    ]:
        path = edited_copy(source, _set_tfms(block, make), out / f"tfms_{name}.pipekit", part=_state)
        refused_quickly(load_learner, path, named=(f"field 'dls.recipe.state.blocks_[{block}].state.tfms_'", said))


# ---------------------------------------------------------------------------------------- pretrained= files
def test_a_damaged_safetensors_pretrained_file_is_a_data_error(mnist_dls, out):
    good = out / "body.safetensors"
    save_file(dict(simple_cnn(n_in=1, n_out=2, channels=(4, 8)).state_dict()), good)
    data = good.read_bytes()
    for name, content in [("cut", data[: len(data) // 2]), ("empty", b""), ("text", b"hello, not weights"),
                          ("huge_header", (2**40).to_bytes(8, "little") + b"{}")]:
        path = out / f"pretrained_{name}.safetensors"
        path.write_bytes(content)
        with pytest.raises(DataError) as e:
            vision_learner(mnist_dls, "xresnet18", pretrained=str(path))
        assert f"pretrained={str(path)!r}" in str(e.value) and "copy or download it again" in str(e.value)


def test_pretrained_weights_are_refused_unusable_and_warned_partial(out):
    body = simple_cnn(n_in=1, n_out=2, channels=(4, 8))
    own = {k: v.clone() for k, v in body.state_dict().items()}
    with_nan = {k: v.clone() for k, v in own.items()}
    with_nan["0.0.0.weight"].view(-1)[0] = float("nan")
    for name, state, said in [
        ("nan", with_nan, "'0.0.0.weight' holds numbers that are not finite"),
        ("int64", {k: v.to(torch.int64) if v.is_floating_point() else v for k, v in own.items()},
         "holds int64 numbers where the model keeps float32"),
    ]:
        path = out / f"pretrained_{name}.safetensors"
        save_file(state, path)
        fresh = simple_cnn(n_in=1, n_out=2, channels=(4, 8))
        before = {k: v.clone() for k, v in fresh.state_dict().items()}
        with pytest.raises(DataError, match=said) as e:
            load_body_weights(fresh, path)
        assert f"pretrained={str(path)!r}" in str(e.value)
        assert all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())
    # one of the 14 tensors left out: loaded, and the user is told which keeps its random start
    path = out / "pretrained_partial.safetensors"
    save_file({k: v for k, v in own.items() if k != "0.1.0.weight"}, path)
    with pytest.warns(UserWarning, match=r"lacks 1 of the body's 14 tensors.*'0\.1\.0\.weight'"):
        assert load_body_weights(simple_cnn(n_in=1, n_out=2, channels=(4, 8)), path) == 13
    path = out / "pretrained_whole.safetensors"
    save_file(own, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the whole body: no warning
        fresh = simple_cnn(n_in=1, n_out=2, channels=(4, 8))
        assert load_body_weights(fresh, path) == 14
    assert all(torch.equal(v, own[k]) for k, v in fresh.state_dict().items())


# ---------------------------------------------------------------------------------------------- checkpoints
def _items(node, *keys):
    """The value at ``keys`` in a checkpoint record's stored dictionaries (``{"__items__": [[k, v], ...]}``)."""
    for k in keys:
        node = node[k] if isinstance(node, list) else next(v for key, v in node["__items__"] if key == k)
    return node


def test_a_checkpoints_parameter_index_written_as_a_list_is_refused(tab_learner, out):
    path = tab_learner.save("ck")

    def index_as_list(rec):
        pairs = _items(rec["opt"], "opt", "param_groups", 0)["__items__"]
        params = next(v for k, v in pairs if k == "params")
        params[0] = [params[0]]

    bad = edited_copy(path, index_as_list, path.with_name("ck_index_list.pipekit"))
    before = {k: v.clone() for k, v in tab_learner.model.state_dict().items()}
    with pytest.raises(ExportError, match=r"field 'opt\.opt\.param_groups\[0\]\.params' must list \d+ distinct "
                                          r"parameter indices") as e:
        tab_learner.load(bad)
    assert str(bad) in str(e.value)
    assert _unchanged(tab_learner, before)
    tab_learner.load(path)  # the genuine checkpoint


# -------------------------------------------------------------------------------------------- loss weights
def test_loss_class_weights_read_from_a_file_must_fit_the_classes(tabular_export, adult, out):
    rows = adult.tail(64)
    # a weight out of the loss's own range is refused by the loss's check (field 'loss', the value and the range);
    # weights in range but not one per class by the check against the data's classes
    in_range = "is not accepted; expected None or one weight per class, each a number from 0 to 1e12 and not all 0"
    for name, weight, where, said in [
            ("none", [], "field 'loss'", f"weight=[] {in_range}"),
            ("three", [1.0, 2.0, 3.0], "field 'loss.params.weight'", "holds 3 weights for 2 classes"),
            ("nan", [math.nan, 1.0], "field 'loss'", f"weight=[nan, 1.0] {in_range}"),
            ("inf", [1.0, math.inf], "field 'loss'", f"weight=[1.0, inf] {in_range}"),
            ("negative", [-1.0, 1.0], "field 'loss'", f"weight=[-1.0, 1.0] {in_range}")]:
        path = edited_copy(tabular_export, lambda r, w=weight: r["loss"]["params"].__setitem__("weight", w),
                           out / f"loss_weight_{name}.pipekit")
        refused_quickly(load_learner, path, named=(where, said))
    # weights that fit load, and the loss computed with them is a number
    path = edited_copy(tabular_export, lambda r: r["loss"]["params"].__setitem__("weight", [1.0, 3.0]),
                       out / "loss_weight_fits.pipekit")
    learn = load_learner(path)
    assert learn.loss_func.weight.tolist() == [1.0, 3.0]
    assert np.isfinite(learn.validate(dl=learn.dls.test_dl(rows))[0])


# ------------------------------------------------------------------------------- files pipekit does not read
def test_a_torch_save_file_is_said_to_be_a_pickle_whatever_its_layout(out):
    said = ("is a pickle file (e.g. fastai's export.pkl", "pipekit never unpickles",
            "learn.export('model.pipekit')")
    state = {"model": simple_cnn(n_in=1, n_out=2, channels=(4, 8)).state_dict(), "vocab": ["3", "7"]}
    zipped, legacy = out / "export.pkl", out / "legacy.pth"
    torch.save(state, zipped)  # a zip of 'export/data.pkl' and the storages, as fastai's learn.export writes
    torch.save(state, legacy, _use_new_zipfile_serialization=False)  # the format before torch 1.6
    assert zipfile.is_zipfile(zipped) and "export/data.pkl" in zipfile.ZipFile(zipped).namelist()
    assert not zipfile.is_zipfile(legacy)
    for path in (zipped, legacy):
        for load in (load_learner, pipekit.load):
            refused_quickly(load, path, named=said)


def test_saving_a_scikit_learn_pipeline_or_search_says_what_to_save(adult, out):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pipekit.backends import GBM
    from pipekit.sklearn import TabularClassifier

    X, y = adult.select(CONTS).head(400).to_pandas(), adult["salary"].head(400).to_numpy()

    def clf():
        return TabularClassifier(GBM("classification", n_estimators=5, n_jobs=1), random_state=0)

    with pytest.raises(ExportError, match=r"save the pipekit estimator it holds: pipekit\.save\(pipe\[-1\], path\)"):
        pipekit.save(make_pipeline(StandardScaler(), clf()), out / "pipe.pipekit")
    with pytest.raises(ExportError, match=r"fit the search .*pipekit\.save\(search\.best_estimator_, path\)"):
        pipekit.save(GridSearchCV(clf(), {"backend__n_estimators": [3, 5]}, cv=2), out / "search.pipekit")
    search = GridSearchCV(clf(), {"backend__n_estimators": [3, 5]}, cv=2).fit(X, y)
    with pytest.raises(ExportError, match=r"pipekit\.save\(search\.best_estimator_, path\)"):
        pipekit.save(search, out / "search.pipekit")
    # what the message says works, and the file predicts as the search does
    back = pipekit.load(pipekit.save(search.best_estimator_, out / "best.pipekit"))
    assert np.array_equal(back.predict_proba(X.tail(20)), search.predict_proba(X.tail(20)))
    with pytest.raises(ExportError, match="is not a pipekit component or learner$"):
        pipekit.save(StandardScaler(), out / "scaler.pipekit")  # nothing of pipekit's in it: nothing more to say
