"""Pretrained vision learners on the paths users take: an exported learner loaded and given new loaders, a cut that
wraps the pretrained body, and pipekit's pretrained EfficientNet-Lite passed as a module; on real dogscats photos."""
from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pytest
import torch
from torch import nn

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.learn import load_learner
from pipekit.vision import ImageBlock, Normalize, Resize, create_body, vision_learner
from pipekit.vision.efficientnet import (EfficientNetLite, EfficientNetLiteBody, efficientnet_lite,
                                        efficientnet_lite_stats, efficientnet_lite_weights, load_pretrained)

ROOT = Path(__file__).resolve().parents[1]
LITE_MEAN, LITE_STD = [127 / 255] * 3, [128 / 255] * 3


def dogscats_dls(n: int = 6, size: int = 64, batch_tfms=None):
    """``n`` photos of each class in train and valid, as a user's get_dls() builds them again and again."""
    def get_items(path: Path) -> list[Path]:
        return [f for split in ("train", "valid") for kind in ("cats", "dogs")
                for f in get_image_files(path / split / kind)[:n]]

    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_items, get_y=parent_label,
                       splitter=GrandparentSplitter(), item_tfms=[Resize(size)], batch_tfms=batch_tfms)
    return dblock.dataloaders(D.path("dogscats"), bs=6, seed=0, device="cpu")


def normalizers(dls) -> list[Normalize]:
    return [t for t in dls.train.batch_tfms if isinstance(t, Normalize)]


def valid_batch(dls) -> torch.Tensor:
    return next(iter(dls.valid))[0]


# ------------------------------------------------------------------- a loaded learner given new loaders
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    learn = vision_learner(dogscats_dls(), "efficientnet_lite0")
    path = learn.export(tmp_path_factory.mktemp("export") / "lite.pipekit")
    return learn, path


def test_loaded_pretrained_learner_normalises_loaders_assigned_later_as_the_exported_one(exported):
    learn, path = exported
    photo = D.path("dogscats") / "valid" / "dogs" / get_image_files(D.path("dogscats") / "valid" / "dogs")[0].name
    want = learn.predict(photo)[2]
    loaded = load_learner(path)
    loaded.dls = dogscats_dls()  # what load_learner's message says to do before training
    norms = normalizers(loaded.dls)
    assert len(norms) == 1
    assert norms[0].mean == pytest.approx(LITE_MEAN) and norms[0].std == pytest.approx(LITE_STD)
    # the same inputs, on the scale the weights were trained on (-1..1, not 0..1), and the same prediction
    xb = valid_batch(loaded.dls)
    assert float(xb.min()) < -0.5
    assert torch.allclose(xb, valid_batch(learn.dls))
    assert torch.allclose(loaded.predict(photo)[2], want, atol=1e-5)


def test_loaded_learner_normalises_new_loaders_without_pipekit_vision_imported_first(exported):
    _, path = exported
    code = (f"import sys, pipekit\nassert 'pipekit.vision' not in sys.modules\n"
            f"learn = pipekit.load_learner({str(path)!r})\nprint(learn.dls_hook.keywords['stats'][0])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [float(v) for v in out.stdout.strip().strip("[]").split(",")] == pytest.approx(LITE_MEAN)


def test_loaded_learner_with_the_users_normalize_keeps_that_one_alone(tmp_path):
    stats = ([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
    learn = vision_learner(dogscats_dls(batch_tfms=Normalize.from_stats(*stats)), "xresnet18")
    loaded = load_learner(learn.export(tmp_path / "own.pipekit"))
    loaded.dls = dogscats_dls(batch_tfms=Normalize.from_stats(*stats))
    norms = normalizers(loaded.dls)
    assert len(norms) == 1 and norms[0].mean == pytest.approx(stats[0]) and norms[0].std == pytest.approx(stats[1])


def test_loaded_learner_normalises_new_loaders_with_the_users_normalize_as_the_live_one(tmp_path):
    from pipekit.vision import imagenet_stats

    torch.manual_seed(0)
    learn = vision_learner(dogscats_dls(batch_tfms=Normalize.from_stats(*imagenet_stats)), "xresnet18")
    loaded = load_learner(learn.export(tmp_path / "own.pipekit"))
    learn.dls, loaded.dls = dogscats_dls(), dogscats_dls()  # new loaders, built without the Normalize
    for dls in (learn.dls, loaded.dls):
        norms = normalizers(dls)
        assert len(norms) == 1
        assert norms[0].mean == pytest.approx(list(imagenet_stats[0]), abs=1e-6)
        assert norms[0].std == pytest.approx(list(imagenet_stats[1]), abs=1e-6)
    xb = valid_batch(loaded.dls)
    assert float(xb.min()) < -1.5  # ImageNet-normalised, not 0..1
    assert torch.allclose(xb, valid_batch(learn.dls))


def test_loaded_learner_without_a_normalize_gets_no_loaders_hook(tmp_path):
    learn = vision_learner(dogscats_dls(), "xresnet18", normalize=False)
    assert learn.dls_hook is None and not normalizers(learn.dls)
    loaded = load_learner(learn.export(tmp_path / "plain.pipekit"))
    assert loaded.dls_hook is None
    loaded.dls = dogscats_dls()
    assert not normalizers(loaded.dls) and float(valid_batch(loaded.dls).min()) >= 0


def test_loaded_plain_learner_with_the_users_normalize_gets_no_loaders_hook(tmp_path):
    from pipekit.learn import Learner
    from pipekit.vision import imagenet_stats, xresnet18

    learn = Learner(dogscats_dls(batch_tfms=Normalize.from_stats(*imagenet_stats)), xresnet18(n_out=2))
    loaded = load_learner(learn.export(tmp_path / "learner.pipekit"))
    assert learn.dls_hook is None and loaded.dls_hook is None  # only vision_learner and unet_learner set one


def test_loaded_tabular_learner_gets_no_loaders_hook(tmp_path):
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(200)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["education"], cont_names=["age"], bs=64, seed=0)
    loaded = load_learner(tabular_learner(dls, layers=[8], path=tmp_path).export("adult.pipekit"))
    assert loaded.dls_hook is None


# ------------------------------------------------------------------- a cut that wraps the pretrained body
@pytest.mark.parametrize("pretrained", [None, True])
def test_cut_wrapping_the_lite_body_keeps_its_imagenet_weights_frozen_and_their_stats(pretrained):
    dls = dogscats_dls()
    learn = vision_learner(dls, "efficientnet_lite0", cut=lambda m: nn.Sequential(m.body), pretrained=pretrained)
    body = learn.model.body[0]
    assert isinstance(body, EfficientNetLiteBody)
    published = efficientnet_lite_weights("lite0")
    state = body.state_dict()
    assert all(torch.equal(state[k], v) for k, v in published.items() if not k.startswith("_fc."))
    convs = [m.weight for m in learn.model.body.modules() if isinstance(m, nn.Conv2d)]
    assert convs and not any(w.requires_grad for w in convs)  # frozen but for its batch norms (train_bn)
    assert all(p.requires_grad for p in learn.model.head.parameters())
    norms = normalizers(learn.dls)
    assert len(norms) == 1 and norms[0].mean == pytest.approx(LITE_MEAN) and norms[0].std == pytest.approx(LITE_STD)


def test_create_body_with_a_cut_wrapping_the_lite_body_loads_the_weights():
    body = create_body("efficientnet_lite0", cut=lambda m: nn.Sequential(m.body), pretrained=True)
    stem = efficientnet_lite_weights("lite0")["_conv_stem.weight"]
    assert torch.equal(body[0]._conv_stem.weight, stem)


def test_cut_leaving_out_the_lite_body_says_so():
    dls = dogscats_dls()

    def stem_only(m):
        return nn.Sequential(m.body._conv_stem, m.body._bn0)

    with pytest.raises(ParameterError) as e:
        vision_learner(dls, "efficientnet_lite0", cut=stem_only, pretrained=True)
    msg = str(e.value)
    assert "not for efficientnet_lite0" not in msg and "EfficientNetLiteBody" in msg and "pretrained=False" in msg
    with pytest.warns(UserWarning, match="random weights"):
        vision_learner(dls, "efficientnet_lite0", cut=stem_only)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vision_learner(dls, "efficientnet_lite0", cut=stem_only, pretrained=False)


# ------------------------------------------------------------------- pipekit's pretrained Lite as a module
def test_module_arch_holding_the_lite_imagenet_weights_gets_their_stats():
    torch.manual_seed(0)
    learn = vision_learner(dogscats_dls(), efficientnet_lite("lite0", n_out=2, pretrained=True))
    norms = normalizers(learn.dls)
    assert len(norms) == 1
    assert norms[0].mean == pytest.approx(list(efficientnet_lite_stats[0]))
    assert norms[0].std == pytest.approx(list(efficientnet_lite_stats[1]))
    assert not learn.model.body._conv_stem.weight.requires_grad


def test_module_arch_with_random_lite_weights_gets_measured_stats():
    torch.manual_seed(0)
    learn = vision_learner(dogscats_dls(), efficientnet_lite("lite0", n_out=2, pretrained=False))
    norms = normalizers(learn.dls)
    assert len(norms) == 1 and norms[0].mean != pytest.approx(LITE_MEAN, abs=1e-3)


def test_pretrained_lite_module_trained_on_small_images_keeps_its_stats_when_reused():
    # under 64 px the pretrained body's batch norms follow the data at momentum 0.1: still the ImageNet weights
    model = efficientnet_lite("lite0", n_out=2, pretrained=True)
    vision_learner(dogscats_dls(size=32), model)
    assert {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.1}
    for module in (model, copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        norms = normalizers(vision_learner(dogscats_dls(), module).dls)
        assert len(norms) == 1
        assert norms[0].mean == pytest.approx(LITE_MEAN) and norms[0].std == pytest.approx(LITE_STD)


def test_random_lite_module_with_the_pretrained_momentum_gets_measured_stats():
    torch.manual_seed(0)
    model = EfficientNetLite("lite0", n_out=2, bn_momentum=0.01)  # random weights, whatever the momentum
    learn = vision_learner(dogscats_dls(), model)
    norms = normalizers(learn.dls)
    assert len(norms) == 1 and norms[0].mean != pytest.approx(LITE_MEAN, abs=1e-3)
    assert model.body.pretrained_weights is None
    assert load_pretrained(model).body.pretrained_weights == "efficientnet_lite0"


# ------------------------------------------------------------------- a file naming the loaded-learner function
def test_record_naming_the_loaded_learner_function_is_refused():
    from pipekit.core.component import from_data
    from pipekit.core.errors import ExportError

    with pytest.raises(ExportError, match="pipekit.vision.normalize_loaded.*loaded_learner"):
        from_data({"__ref__": "pipekit.vision.normalize_loaded"})
