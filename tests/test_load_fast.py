"""The first steps a user times: load_learner in a new process (the shape check builds the architecture on the meta
device without importing torch's compiler stack, ``torch._dynamo``, 3-5 s with sympy, and the loaded learner predicts
as the exporting one did) and a text show_batch (texts drawn as wrapped, not measured again word by word)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.vision.models import Bottleneck, ResNet, XResNet, _declared_channels, body_features, create_body

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def loaded_elsewhere(tmp_path_factory):
    """A tabular learner (adult_sample) and a resnet18 image learner (mnist_tiny) exported here, then loaded and
    asked for a prediction in a new Python process: ``(predictions here, what the new process saw)``."""
    from pipekit.tabular import Categorify, FillMissing, Normalize, TabularDataLoaders, tabular_learner
    from pipekit.vision import ImageDataLoaders, resnet18, vision_learner

    out = tmp_path_factory.mktemp("load_fast")
    adult = D.path("adult_sample") / "adult.csv"
    tdls = TabularDataLoaders.from_csv(adult, y_names="salary", bs=64, seed=0, procs=[Categorify, FillMissing, Normalize],
                                       cat_names=["workclass", "education", "marital-status", "occupation",
                                                  "relationship", "race"],
                                       cont_names=["age", "fnlwgt", "education-num"])
    pipekit.set_seed(0)
    table = tabular_learner(tdls)
    row = pl.read_csv(adult).row(3, named=True)
    mnist = D.path("mnist_tiny")
    vdls = ImageDataLoaders.from_folder(mnist, bs=32, seed=0)
    pipekit.set_seed(0)
    vision = vision_learner(vdls, resnet18, pretrained=False)
    image = str(sorted((mnist / "test").glob("*.png"))[0])
    before = {}
    for name, learn, item in (("tabular", table, row), ("vision", vision, image)):
        learn.export(out / f"{name}.pipekit")
        label, _, probs = learn.predict(item)
        before[name] = {"label": str(label), "probs": probs.tolist()}
    script = (
        "import json, sys, torch\n"
        f"torch.set_num_threads({torch.get_num_threads()})\n"
        "from pipekit import load_learner\n"
        "seen = {}\n"
        f"for name, item in (('tabular', {row!r}), ('vision', {image!r})):\n"
        f"    learn = load_learner({str(out)!r} + '/' + name + '.pipekit')\n"
        "    label, _, probs = learn.predict(item)\n"
        "    seen[name] = {'label': str(label), 'probs': probs.tolist(), 'dynamo': 'torch._dynamo' in sys.modules}\n"
        "print(json.dumps(seen))\n")
    repo = str(Path(__file__).resolve().parents[1])  # this checkout, whatever the installed copy is
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                         cwd=str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    return before, json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["tabular", "vision"])
def test_load_learner_in_a_new_process_does_not_import_the_compiler(loaded_elsewhere, name):
    before, after = loaded_elsewhere
    assert after[name]["dynamo"] is False  # imported by neither load_learner nor predict
    assert after[name]["label"] == before[name]["label"]
    np.testing.assert_allclose(after[name]["probs"], before[name]["probs"], rtol=1e-6, atol=1e-7)


def _bottlenecks(n_in: int = 3, n_out: int = 2) -> ResNet:  # resnet50's blocks, one per stage
    return ResNet(Bottleneck, (1, 1, 1, 1), n_in, n_out)


def _xbottlenecks(n_in: int = 3, n_out: int = 2) -> XResNet:  # xresnet50's blocks, one per stage
    return XResNet(4, (1, 1, 1, 1), n_in, n_out)


@pytest.mark.parametrize("arch,n_in,cut", [("resnet18", 3, None), (_bottlenecks, 1, None), ("resnet18", 3, -3),
                                           ("resnet18", 3, 4), ("xresnet18", 3, None), (_xbottlenecks, 2, None),
                                           ("xresnet18", 3, lambda m: m[0][:5]), ("simple_cnn", 1, None),
                                           ("efficientnet_lite0", 3, None)])
def test_a_body_on_the_meta_device_reads_the_width_its_forward_pass_measures(arch, n_in, cut):
    """What ``load_learner``'s check of a file reads from a body built on the meta device is what
    ``vision_learner`` measured when it built the head the file's weights are for."""
    measured = body_features(create_body(arch, n_in, cut), n_in)
    with torch.device("meta"):
        body = create_body(arch, n_in, cut)
    assert _declared_channels(body) == measured
    assert body_features(body, n_in) == measured


def test_a_body_whose_layers_do_not_declare_its_width_is_still_measured_on_the_meta_device():
    class Doubled(torch.nn.Module):  # a forward that changes the width its layers declare
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return torch.cat([y, y], 1)

    with torch.device("meta"):
        body = torch.nn.Sequential(Doubled(), torch.nn.ReLU())
    assert _declared_channels(body) is None
    assert body_features(body, 1) == 8


def test_text_show_batch_draws_its_texts_as_wrapped(tmp_path):
    """Each review is wrapped to its cell once (textwrap); matplotlib is not asked to wrap it again, which measured it
    word by word on every draw (seconds for nine reviews)."""
    import pandas as pd

    from pipekit.data import CategoryBlock, ColReader, DataBlock, RandomSplitter
    from pipekit.data.plotting import get_pyplot
    from pipekit.text import TextBlock

    reviews = pd.read_csv(D.path("imdb_sample") / "texts.csv").head(40)
    dls = DataBlock(blocks=(TextBlock.from_df("text", cache_dir=False), CategoryBlock), get_x=ColReader("text"),
                    get_y=ColReader("label"), splitter=RandomSplitter(0.2, seed=0)).dataloaders(reviews, bs=8, seed=0)
    out = dls.show_batch(max_n=4)
    assert out is not None and out.stat().st_size > 2000
    texts = [t for ax in get_pyplot().gcf().axes for t in ax.texts]  # headless, the figure is left current
    assert len(texts) == 4
    for t in texts:
        lines = t.get_text().splitlines()
        assert len(lines) > 3 and max(map(len, lines)) < 80  # wrapped to the cell, as drawn
        assert not t.get_wrap()

