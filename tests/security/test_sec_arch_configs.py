"""Exported learners whose record asks for far more modules than the file holds weights for: the stored arguments
that decide how many modules are built are checked against the stored weights before anything is built, so a small
crafted file cannot make ``load_learner`` spend seconds and hundreds of MB building a net it then refuses."""
from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from pipekit.core import ExportError
from pipekit.data import CategoryBlock, DataBlock
from pipekit.datasets import path as dataset_path
from pipekit.learn import Learner, load_learner, simple_cnn

from file_edits import refused_quickly as refused_within_bounds


def craft(base: Path, out: Path, edit) -> Path:
    """``base`` with its record.json's ``arch.config`` changed by ``edit`` (the weights left as they are)."""
    with zipfile.ZipFile(base) as z:
        members = {n: z.read(n) for n in z.namelist()}
    record = json.loads(members["record.json"])
    edit(record["arch"]["config"])
    members["record.json"] = json.dumps(record).encode()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out


def refused_quickly(path: Path, match: str) -> None:
    """``load_learner(path)`` raises an ExportError matching ``match`` in under 10 s of CPU time and 100 MB traced.
    A config of 100,000 entries is refused in about 1 s on a busy 2-core machine (tracing allocations included);
    building what it asks for took 7 s and 360 MB for 20,000 entries."""
    refused_within_bounds(load_learner, path, match=match, seconds=10)


def test_sec_simple_cnn_channels_must_be_the_stored_convolutions(mnist_dls, tmp_path):
    learn = Learner(mnist_dls, simple_cnn(n_in=1, n_out=mnist_dls.c, channels=(4, 8)))
    learn.export(tmp_path / "cnn.pipekit")
    x = torch.rand(3, 1, 28, 28)
    loaded = load_learner(tmp_path / "cnn.pipekit")
    learn.model.eval()
    assert torch.equal(loaded.model(x), learn.model(x))  # a real export still loads and predicts the same
    # 100000 widths: one conv block each (20000 took 7 s and 360 MB before the weights were compared)
    huge = craft(tmp_path / "cnn.pipekit", tmp_path / "huge.pipekit", lambda c: c.update(channels=[1] * 100_000))
    refused_quickly(huge, r"field 'arch.config.channels' has 100000 width\(s\), but the stored weights hold "
                          r"2 convolution\(s\) of widths \[4, 8\]")
    wider = craft(tmp_path / "cnn.pipekit", tmp_path / "wider.pipekit", lambda c: c.update(channels=[4, 4096]))
    refused_quickly(wider, r"field 'arch.config.channels' has 2 width\(s\) \[4, 4096\]")
    for bad in ("wide", [4, -8], [4, 8.5], [True, 8]):
        path = craft(tmp_path / "cnn.pipekit", tmp_path / "bad.pipekit", lambda c, b=bad: c.update(channels=b))
        refused_quickly(path, r"field 'arch.config.channels' must be a list of positive widths")


@pytest.mark.parametrize("custom", [False, True], ids=["vision_model", "create_head"])
def test_sec_vision_head_lin_ftrs_must_be_the_stored_linear_layers(mnist_dls, tmp_path, custom):
    from pipekit.vision import create_head, vision_learner
    from pipekit.vision.models import check_stored_head

    head = {"custom_head": create_head(64, mnist_dls.c, lin_ftrs=[8])} if custom else {"lin_ftrs": [8]}
    learn = vision_learner(mnist_dls, "simple_cnn", pretrained=False, **head)
    learn.export(tmp_path / "vis.pipekit")
    x = torch.rand(3, 1, 28, 28)
    loaded = load_learner(tmp_path / "vis.pipekit")
    learn.model.eval()
    assert torch.equal(loaded.model(x), learn.model(x))
    if custom:  # load_learner checks the top-level architecture; create_head's own check, as registered
        shapes = {k: tuple(v.shape) for k, v in learn.model.head.state_dict().items()}
        create_head.check_stored({"nf": 64, "n_out": 2, "lin_ftrs": [8]}, shapes, "arch.config")
        for cfg, match in (({"nf": 64, "n_out": 2, "lin_ftrs": [1] * 100_000}, r"has 100000 hidden size"),
                           ({"nf": 64, "n_out": 2}, r"has 1 hidden size\(s\) \[512\]"),
                           ({"nf": 64, "n_out": 3, "lin_ftrs": [8]}, r"'arch.config.n_out' is 3")):
            with pytest.raises(ExportError, match=match):
                create_head.check_stored(cfg, shapes, "arch.config")
        return
    # 100000 hidden sizes: a linear, batch-norm and dropout each (20000 took 7 s and 440 MB before the weights
    # were compared)
    huge = craft(tmp_path / "vis.pipekit", tmp_path / "huge.pipekit", lambda c: c.update(lin_ftrs=[1] * 100_000))
    refused_quickly(huge, r"field 'arch.config.lin_ftrs' has 100000 hidden size\(s\), but the stored weights hold "
                          r"1 hidden linear layer\(s\) of sizes \[8\]")
    none = craft(tmp_path / "vis.pipekit", tmp_path / "none.pipekit", lambda c: c.update(lin_ftrs=None))
    refused_quickly(none, r"field 'arch.config.lin_ftrs' has 0 hidden size\(s\) \[\]")
    out = craft(tmp_path / "vis.pipekit", tmp_path / "out.pipekit", lambda c: c.update(n_out=3))
    refused_quickly(out, r"field 'arch.config.n_out' is 3, but the stored output layer has 2 output\(s\)")
    bad = craft(tmp_path / "vis.pipekit", tmp_path / "bad.pipekit", lambda c: c.update(lin_ftrs=[0]))
    refused_quickly(bad, r"field 'arch.config.lin_ftrs' must be None or a list of positive sizes")
    assert check_stored_head({"lin_ftrs": [8], "custom_head": {"x": 1}}, {}, "arch.config") is None


def test_sec_xresnet_layers_must_be_the_stored_residual_blocks(mnist_dls, tmp_path):
    from pipekit.vision.models import XResNet

    learn = Learner(mnist_dls, XResNet(1, (1, 1), n_in=1, n_out=mnist_dls.c, widths=(8, 8)))
    learn.export(tmp_path / "xres.pipekit")
    x = torch.rand(2, 1, 28, 28)
    learn.model.eval()
    assert torch.equal(load_learner(tmp_path / "xres.pipekit").model(x), learn.model(x))
    # 100000 blocks in the first stage (5000 took 6 s and 300 MB before the weights were compared)
    huge = craft(tmp_path / "xres.pipekit", tmp_path / "huge.pipekit", lambda c: c.update(layers=[100_000, 1]))
    refused_quickly(huge, r"field 'arch.config.layers' has blocks per stage \[100000, 1\], but the stored weights "
                          r"hold \[1, 1\]")
    stages = craft(tmp_path / "xres.pipekit", tmp_path / "stages.pipekit",
                   lambda c: c.update(layers=[1] * 100_000, widths=[8] * 100_000))
    refused_quickly(stages, r"field 'arch.config.layers' has blocks per stage 100000 stages")
    bad = craft(tmp_path / "xres.pipekit", tmp_path / "bad.pipekit", lambda c: c.update(layers=[1, 0]))
    refused_quickly(bad, r"field 'arch.config.layers' must be a list of positive block counts")


@pytest.fixture(scope="module")
def text_export(tmp_path_factory):
    import pandas as pd

    from pipekit.data import ColReader, RandomSplitter
    from pipekit.text import AWD_LSTM, TextBlock, language_model_learner, text_classifier_learner

    reviews = pd.read_csv(dataset_path("imdb_sample") / "texts.csv").head(60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = DataBlock(blocks=(TextBlock.from_df("text", cache_dir=False), CategoryBlock), get_x=ColReader("text"),
                        get_y=ColReader("label"), splitter=RandomSplitter(0.2, seed=0)).dataloaders(reviews, bs=16,
                                                                                                     seed=0)
        lm_dls = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, cache_dir=False), get_x=ColReader("text"),
                           splitter=RandomSplitter(0.2, seed=0)).dataloaders(reviews, bs=8, seq_len=16, seed=0)
    out = tmp_path_factory.mktemp("text")
    config = dict(emb_sz=16, n_hid=16, n_layers=2)
    text_classifier_learner(dls, AWD_LSTM, config=config, lin_ftrs=[8]).export(out / "clas.pipekit")
    lm = language_model_learner(lm_dls, AWD_LSTM, config=config)
    return out, {k: tuple(v.shape) for k, v in lm.model.state_dict().items()}


def test_sec_awd_lstm_n_layers_and_lin_ftrs_must_be_the_stored_layers(text_export, tmp_path):
    from pipekit.text import learner as text_learner
    from pipekit.text.models import check_stored_awd_lstm

    out, lm_shapes = text_export
    check_stored_awd_lstm({"vocab_sz": 10, "n_layers": 2}, lm_shapes, "arch.config")  # the language model's own
    with pytest.raises(ExportError, match=r"field 'arch.config.n_layers' is 100000, but the stored weights hold 2"):
        check_stored_awd_lstm({"vocab_sz": 10, "n_layers": 100_000}, lm_shapes, "arch.config")
    # as load_learner reads it from the registered architecture
    assert text_learner.awd_lstm_classifier.check_stored is check_stored_awd_lstm
    assert load_learner(out / "clas.pipekit").model is not None  # a real export still loads
    # n_layers=10000 took 4.5 s and 220 MB, lin_ftrs of 20000 7 s and 430 MB, before the weights were compared
    for edit, match in ((lambda c: c.update(n_layers=100_000), r"'arch.config.n_layers' is 100000, but the stored "
                                                               r"weights hold 2 LSTM layer\(s\)"),
                        (lambda c: c.update(lin_ftrs=[1] * 100_000, ps=[0.1] * 100_000),
                         r"'arch.config.lin_ftrs' has 100000 hidden size\(s\), but the stored weights hold 1 hidden "
                         r"linear layer\(s\) of sizes \[8\]"),
                        (lambda c: c.update(lin_ftrs=None), r"'arch.config.lin_ftrs' has 1 hidden size\(s\) \[50\]"),
                        (lambda c: c.update(n_class=3), r"'arch.config.n_class' is 3, but the stored output layer "
                                                        r"has 2 output\(s\)"),
                        (lambda c: c.update(n_layers="many"), r"'arch.config.n_layers' must be a positive integer")):
        refused_quickly(craft(out / "clas.pipekit", tmp_path / "bad.pipekit", edit), match)


def test_sec_awd_lstm_window_sizes_dropouts_and_padding_are_checked_at_load(text_export, tmp_path):
    """A classifier's seq_len, max_len and drop_mult, and a model's pad_token, loaded as written and failed at
    predict with a raw error the CLI blamed on the input file (seq_len=0: "range() arg 3 must not be zero");
    each is now refused at load, naming the field."""
    out, _ = text_export
    assert load_learner(out / "clas.pipekit").model is not None  # the real export loads (and warms the imports)
    for edit, match in ((lambda c: c.update(seq_len=0), r"seq_len=0 is not accepted; expected an integer in \[1"),
                        (lambda c: c.update(seq_len=-1), r"seq_len=-1 is not accepted"),
                        (lambda c: c.update(max_len=0), r"max_len=0 is not accepted"),
                        (lambda c: c.update(drop_mult=float("nan")), r"drop_mult=nan is not accepted"),
                        (lambda c: c.update(drop_mult=6.0), r"output_p=0.2 times drop_mult=6.0 is a dropout of 1.2"),
                        (lambda c: c.update(pad_token=-1), r"AWD_LSTM: pad_token=-1 is not accepted"),
                        (lambda c: c.update(pad_token=10**9), r"AWD_LSTM: pad_token=1000000000 is not accepted")):
        refused_quickly(craft(out / "clas.pipekit", tmp_path / "bad.pipekit", edit), match)


def test_sec_efficientnet_concat_head_lin_ftrs_must_be_the_stored_linear_layers(mnist_dls, tmp_path):
    from pipekit.vision.efficientnet import EfficientNetLite, efficientnet_lite0

    learn = Learner(mnist_dls, efficientnet_lite0(n_out=mnist_dls.c, n_in=1, head="concat", lin_ftrs=[8]))
    learn.export(tmp_path / "eff.pipekit")
    assert load_learner(tmp_path / "eff.pipekit").model.head[3].weight.shape == (8, 2560)  # a real export loads
    # 100000 hidden sizes (20000 took 6 s and 400 MB before the weights were compared)
    huge = craft(tmp_path / "eff.pipekit", tmp_path / "huge.pipekit", lambda c: c.update(lin_ftrs=[1] * 100_000))
    refused_quickly(huge, r"field 'arch.config.lin_ftrs' has 100000 hidden size\(s\), but the stored weights hold "
                          r"1 hidden linear layer\(s\) of sizes \[8\]")
    # the class builds a "concat" head by default, the lite0/1/2 builders an "imagenet" one (no lin_ftrs used)
    shapes = {"head._fc.weight": (2, 1280), "head._fc.bias": (2,)}
    efficientnet_lite0.check_stored({"n_out": 2, "lin_ftrs": [1] * 10}, shapes, "arch.config")
    with pytest.raises(ExportError, match=r"'arch.config.lin_ftrs' has 10 hidden size\(s\)"):
        EfficientNetLite.check_stored({"n_out": 2, "lin_ftrs": [1] * 10}, shapes, "arch.config")


def test_sec_vision_model_nested_body_and_custom_head_configs_are_checked(mnist_dls, tmp_path):
    from pipekit.vision import create_head, vision_learner
    from pipekit.vision.models import XResNet

    x = torch.rand(2, 1, 28, 28)
    for name, learn in (("body", vision_learner(mnist_dls, XResNet(1, (1, 1), n_in=1, n_out=2, widths=(8, 8)),
                                                pretrained=False)),
                        ("head", vision_learner(mnist_dls, "simple_cnn", pretrained=False,
                                                custom_head=create_head(64, mnist_dls.c, lin_ftrs=[8]))),
                        ("cnn", vision_learner(mnist_dls, simple_cnn(1, 2, (4, 8)), pretrained=False))):
        learn.export(tmp_path / f"{name}.pipekit")
        learn.model.eval()
        assert torch.equal(load_learner(tmp_path / f"{name}.pipekit").model(x), learn.model(x))
    # an xresnet body of 5000 blocks took 15 s and 300 MB, a custom head of 20000 sizes 6 s and 370 MB
    body = craft(tmp_path / "body.pipekit", tmp_path / "huge_body.pipekit",
                 lambda c: c["arch"]["params"]["config"].update(layers=[100_000, 1]))
    refused_quickly(body, r"field 'arch.config.arch.params.config.layers' has blocks per stage \[100000, 1\]")
    head = craft(tmp_path / "head.pipekit", tmp_path / "huge_head.pipekit",
                 lambda c: c["custom_head"]["params"]["config"].update(lin_ftrs=[1] * 100_000))
    refused_quickly(head, r"field 'arch.config.custom_head.params.config.lin_ftrs' has 100000 hidden size\(s\)")
    # a simple_cnn body of 20000 widths took 22 s and 410 MB
    cnn = craft(tmp_path / "cnn.pipekit", tmp_path / "huge_cnn.pipekit",
                lambda c: c["arch"]["params"]["config"].update(channels=[1] * 100_000))
    refused_quickly(cnn, r"field 'arch.config.arch.params.config.channels' has 100000 width\(s\), but the stored "
                         r"weights hold 2 convolution\(s\) of widths \[4, 8\]")
