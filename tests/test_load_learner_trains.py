"""A loaded learner given loaders (``learn.dls = dls``) trains as the exported one did: an export keeps the layer
groups' splitter and the optimiser by registered name, ``lr``, ``wd``, ``moms``, ``train_bn`` and ``wd_bn_bias``,
and ``load_learner`` gives them back, with ``path`` the file's folder; a crafted setting is refused by name."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from functools import partial
from pathlib import Path

import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from file_edits import edited_copy, refused_quickly
from pipekit.core.registry import import_builtin_packages
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock
from pipekit.learn import SGD, Adam, Learner, load_learner, simple_cnn
from pipekit.text import AWD_LSTM, TextBlock, TextLearner, text_classifier_learner
from pipekit.vision import resnet18, vision_learner

pytestmark = pytest.mark.data


def trainable(learn):
    return [n for n, p in learn.model.named_parameters() if p.requires_grad]


def n_groups(learn):
    return len(learn.splitter(learn.model)) if learn.splitter is not None else 1


@pytest.fixture(scope="module")
def text_dls():
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    df = pl.concat([df.filter(~pl.col("is_valid")).head(160), df.filter(pl.col("is_valid")).head(40)])
    db = DataBlock(blocks=(TextBlock.from_df("text", min_freq=3, cache_dir=False), CategoryBlock),
                   get_x=ColReader("text"), get_y=ColReader("label"), splitter=ColSplitter("is_valid"))
    return db.dataloaders(df, bs=32, seed=0, num_workers=0)


@pytest.fixture(scope="module")
def text_export(text_dls, tmp_path_factory):
    """A text classifier on imdb_sample (a tiny AWD-LSTM) with chapter 10's wd=0.1 and SGD, exported."""
    folder = tmp_path_factory.mktemp("text")
    learn = text_classifier_learner(text_dls, AWD_LSTM, config=dict(emb_sz=16, n_hid=24, n_layers=2),
                                    pretrained=False, wd=0.1, opt_func=SGD, path=folder)
    return learn, learn.export("clas.pipekit")


@pytest.fixture(scope="module")
def small_export(mnist_dls, tmp_path_factory):
    """A small CNN on mnist_tiny with settings other than a Learner's defaults, exported: the file crafted below."""
    folder = tmp_path_factory.mktemp("small")
    learn = Learner(mnist_dls, simple_cnn(1, 2, (4, 8)), opt_func=partial(SGD, mom=0.9), wd=0.05, path=folder)
    return learn.export("small.pipekit")


def test_a_loaded_vision_learner_freezes_and_trains_as_the_exported_one(mnist_dls, tmp_path):
    learn = vision_learner(mnist_dls, resnet18, pretrained=False, path=tmp_path, lr=2e-3, wd=0.05,
                           opt_func=partial(SGD, mom=0.9), moms=(0.9, 0.8, 0.9), train_bn=False)
    fname = learn.export("vision.pipekit")
    loaded = load_learner(fname)
    assert loaded.path == tmp_path == fname.parent  # learn.save and learn.export write beside the file
    assert n_groups(loaded) == n_groups(learn) == 3  # the resnet's two body groups and the head
    assert loaded.opt_func.func is SGD and loaded.opt_func.keywords == {"mom": 0.9}
    assert (loaded.lr, loaded.wd, loaded.moms, loaded.train_bn, loaded.wd_bn_bias) == (2e-3, 0.05, (0.9, 0.8, 0.9),
                                                                                      False, False)
    loaded.dls = mnist_dls
    for each in (learn, loaded):
        each.freeze()
    assert trainable(loaded) == trainable(learn)
    assert len(trainable(loaded)) < len(list(loaded.model.parameters()))  # the body is frozen (train_bn=False too)
    loaded.create_opt()
    loaded.opt.set_hyper("lr", slice(1e-5, 1e-3))
    assert len(set(loaded.opt.lrs)) == 3  # discriminative rates, one per group


def test_a_loaded_text_classifier_freezes_gradually_as_the_exported_one(text_export, text_dls):
    learn, fname = text_export
    loaded = load_learner(fname)
    assert type(loaded) is TextLearner and loaded.path == fname.parent
    assert n_groups(loaded) == n_groups(learn) == 4  # embedding, two LSTMs, head
    assert loaded.opt_func is SGD and loaded.wd == 0.1
    loaded.dls = text_dls
    steps = {"freeze": lambda lr: lr.freeze(), "freeze_to(-2)": lambda lr: lr.freeze_to(-2),
             "unfreeze": lambda lr: lr.unfreeze()}
    for step, apply in steps.items():
        apply(learn)
        apply(loaded)
        assert trainable(loaded) == trainable(learn), step
    loaded.freeze()
    assert len(trainable(loaded)) < len(list(loaded.model.parameters()))


def test_a_fresh_process_loads_the_settings(text_export):
    learn, fname = text_export
    script = ("import json, pipekit\n"
              f"learn = pipekit.load_learner({str(fname)!r})\n"
              "print(json.dumps({'groups': len(learn.splitter(learn.model)), 'opt': pipekit.core.registry.name_of("
              "learn.opt_func), 'wd': learn.wd, 'path': str(learn.path)}))\n")
    repo = str(Path(__file__).resolve().parents[1])  # this checkout, whatever the installed copy is
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"groups": 4, "opt": "pipekit.learn.SGD", "wd": 0.1, "path": str(fname.parent)}


def _halves(model):
    return [list(model[0].parameters()), list(model[1].parameters())]


def test_a_splitter_or_optimiser_a_file_cannot_name_is_said_at_export(mnist_dls, tmp_path):
    learn = Learner(mnist_dls, simple_cnn(1, 2, (4, 8)), splitter=_halves, opt_func=torch.optim.SGD, path=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fname = learn.export("halves.pipekit")
    said = " | ".join(str(w.message) for w in caught)
    assert "'_halves' is not registered" in said and "one layer group" in said and "kind='layer_splitter'" in said
    assert "torch.optim.sgd.SGD" in said and "trains with Adam" in said
    loaded = load_learner(fname)
    assert loaded.splitter is None and loaded.opt_func is Adam
    # registered, the user's splitter is kept by name
    pipekit.register(_halves, name="tests.load_learner_trains.halves", kind="layer_splitter")
    loaded = load_learner(Learner(mnist_dls, simple_cnn(1, 2, (4, 8)), splitter=_halves, path=tmp_path)
                          .export("kept.pipekit"))
    assert loaded.splitter is _halves


def test_a_file_of_a_learner_name_alone_loads_with_the_defaults(small_export, tmp_path):
    old = edited_copy(small_export, lambda r: r.update({"learner": "pipekit.learn.Learner"}), tmp_path / "old.pipekit")
    loaded = load_learner(old)
    assert (loaded.splitter, loaded.opt_func, loaded.wd, loaded.lr) == (None, Adam, None, 1e-3)
    assert loaded.path == tmp_path
    settings = load_learner(small_export)
    assert settings.opt_func.func is SGD and settings.opt_func.keywords == {"mom": 0.9} and settings.wd == 0.05


@pytest.mark.parametrize("setting, value, named", [
    ("splitter", {"__ref__": "os.system"}, "learner.splitter"),
    ("splitter", {"__ref__": "pipekit.learn.Adam"}, "learner.splitter"),  # registered, but an optimiser
    ("splitter", "pipekit.vision.body_head_split", "learner.splitter"),
    ("splitter", {"__ref__": "pipekit.vision.encoder_decoder_split"}, "learner.splitter"),  # a U-Net's
    ("opt_func", {"__ref__": "pipekit.text.awd_lstm_clas_split"}, "learner.opt_func"),
    ("opt_func", {"__ref__": "builtins.eval"}, "learner.opt_func"),
    ("splitter", {"__ref__": "pipekit.text.awd_lstm_clas_split"}, "learner.splitter"),
    ("opt_kwargs", {"cbs": 1}, "learner.opt_kwargs"),
    ("opt_kwargs", {"decouple_wd": 1}, "learner.opt_kwargs.decouple_wd"),
    ("wd", -1, "learner.wd"),
    ("wd", "0.1", "learner.wd"),
    ("lr", 0, "learner.lr"),
    ("lr", None, "learner.lr"),
    ("moms", [0.9, 0.8], "learner.moms"),
    ("moms", [0.9, 2, 0.9], "learner.moms"),
    ("train_bn", 1, "learner.train_bn"),
    ("callbacks", [], "'callbacks'"),
    ("class", "pipekit.learn.Adam", "learner.class"),
    ("class", None, "learner.class"),
], ids=["unregistered", "another_kind", "not_a_ref", "another_models", "opt_a_splitter", "opt_unregistered",
        "another_models_2", "opt_not_taken", "opt_wrong_type", "wd_negative", "wd_text", "lr_zero", "lr_null",
        "moms_two", "moms_above_one", "train_bn_int", "unknown_field", "class_not_a_learner", "class_missing"])
def test_a_crafted_learner_setting_is_refused_by_name(small_export, tmp_path, setting, value, named):
    import_builtin_packages()  # a name not registered imports pipekit's packages first: not what is timed here
    bad = edited_copy(small_export, lambda r: r["learner"].update({setting: value}), tmp_path / "bad.pipekit")
    refused_quickly(load_learner, bad, named=(named,))


def _body_head_net(width: int) -> torch.nn.Module:
    """nn.Sequential(body, head) for mnist_tiny's 28x28 grey digits and 2 classes."""
    nn = torch.nn
    return nn.Sequential(nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, width), nn.ReLU()), nn.Linear(width, 2))


def test_a_learner_split_into_body_and_head_loads_with_its_two_groups(mnist_dls, tmp_path):
    """Learner(..., splitter=body_head_splitter) (pipekit's, for nn.Sequential(body, head)) is exported by name and
    loads with its two layer groups: freeze() trains the head alone, as before the export."""
    from pipekit.learn import register_arch
    from pipekit.learn.nets import body_head_splitter

    model = register_arch("test_load.body_head", _body_head_net)(8)
    learn = Learner(mnist_dls, model, splitter=body_head_splitter, path=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a splitter the file cannot name would be warned about
        fname = learn.export("bh.pipekit")
    loaded = load_learner(fname)
    assert n_groups(loaded) == n_groups(learn) == 2
    learn.freeze()
    loaded.freeze()
    assert trainable(loaded) == trainable(learn) == ["1.weight", "1.bias"]
