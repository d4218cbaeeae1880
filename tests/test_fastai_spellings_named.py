"""fastai spellings that pipekit takes with the same meaning, or refuses naming its own: ``xresnet18(c_in=, ks=,
pretrained=False)``, ``MultiCategoryBlock(add_na=True)``, ``learn.show_results(shuffle=)``,
``learn.get_preds(with_targs=False)``, ``DataBlock.datasets(verbose=)``, ``AdaptiveConcatPool2d`` and
``create_vision_model``/``create_cnn_model``, on mnist_tiny."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pipekit.datasets as D
import pipekit.learn.inference as inference
from pipekit.core.errors import ParameterError, PipelineStepError
from pipekit.data import (CategoryBlock, DataBlock, GrandparentSplitter, MultiCategoryBlock, get_image_files,
                          parent_label)
from pipekit.learn import CrossEntropyLossFlat, Learner, arch_spec, build_arch, load_learner
from pipekit.learn.nets import ConcatPool2d, Flatten
from pipekit.vision import ImageBlock, create_body, vision_learner, vision_model, xresnet18, xresnet50

pytestmark = pytest.mark.data

MNIST = D.path("mnist_tiny")


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mnist_tiny's test/ folder is in neither split, which a warning says
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def grey_dls():
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter())
    dls = _quiet(dblock.dataloaders, MNIST, bs=32, seed=0, device="cpu")
    rng = np.random.default_rng(0)
    for i in (0, 1):  # 96 items of each set, valid ones of both digits, keep the passes short
        ds = dls.loaders[i].dataset
        dls.loaders[i] = dls.loaders[i].new(dataset=ds.subset(np.sort(rng.permutation(len(ds))[:96])))
    return dls


@pytest.fixture(scope="module")
def grey_batch(grey_dls):
    return grey_dls.valid.one_batch()[0].float()


@pytest.fixture(scope="module")
def learn(grey_dls):
    torch.manual_seed(0)
    return vision_learner(grey_dls, "simple_cnn")


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- xresnet: c_in, pretrained, ks
def test_xresnet_c_in_is_n_in_and_rebuilds_from_its_spec(grey_batch):
    torch.manual_seed(0)
    fastai = xresnet18(c_in=1, n_out=10).eval()
    torch.manual_seed(0)
    ours = xresnet18(n_in=1, n_out=10).eval()
    assert _same_weights(fastai, ours)
    with torch.no_grad():
        out = fastai(grey_batch)
        assert out.shape == (len(grey_batch), 10) and torch.equal(out, ours(grey_batch))
    again = build_arch(*arch_spec(fastai))  # what an export stores rebuilds a one-channel model
    assert again[0][0][0].weight.shape[1] == 1
    with pytest.raises(ParameterError, match=r"xresnet18: n_in=2 and c_in=1 are one argument \(c_in is fastai's "
                                             r"name of n_in\); give one of them"):
        xresnet18(c_in=1, n_in=2)


def test_xresnet_pretrained_false_accepted_true_refused_saying_why():
    torch.manual_seed(0)
    fastai = xresnet50(pretrained=False, n_out=3)
    torch.manual_seed(0)
    assert _same_weights(fastai, xresnet50(n_out=3))
    with pytest.raises(ParameterError, match=r"xresnet18: pretrained=True: pipekit ships no weights for XResNet.*"
                                             r"efficientnet_lite0"):
        xresnet18(pretrained=True)


def test_xresnet_kernel_size_reaches_stem_pool_and_blocks(grey_batch):
    m = xresnet18(n_in=1, n_out=2, ks=5).eval()
    kernels = {c.kernel_size for c in m.modules() if isinstance(c, nn.Conv2d)}
    assert kernels == {(5, 5), (1, 1)}  # every conv but the 1x1 shortcuts, as fastai's XResNet(ks=5)
    assert m[0][3].kernel_size == 5 and m[0][3].padding == 2
    assert m(grey_batch).shape == (len(grey_batch), 2)
    default = {c.kernel_size for c in xresnet18(n_in=1, n_out=2).modules() if isinstance(c, nn.Conv2d)}
    assert default == {(3, 3), (1, 1)}
    assert arch_spec(m)[1]["ks"] == 5 and build_arch(*arch_spec(m))[0][0][0].weight.shape[-2:] == (5, 5)
    with pytest.raises(ParameterError, match=r"xresnet18: ks=4 .*odd kernel size"):
        xresnet18(ks=4)
    with pytest.raises(ParameterError, match=r"xresnet18: sa= is an option of fastai's XResNet .*leave sa out"):
        xresnet18(sa=True)


# ---------------------------------------------------------------- MultiCategoryBlock(add_na=True)
def _multi(**kw):
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), MultiCategoryBlock(**kw)), get_items=get_image_files,
                       get_y=lambda p: [parent_label(p)], splitter=GrandparentSplitter())
    return _quiet(dblock.dataloaders, MNIST, bs=400, seed=0, device="cpu")


def test_multicategory_add_na_puts_na_first_and_takes_unknown_labels(tmp_path):
    plain, na = _multi(), _multi(add_na=True)
    assert plain.vocab == ["3", "7"] and na.vocab == ["#na#", "3", "7"] and na.c == 3
    y_plain, y_na = plain.valid.one_batch()[1], na.valid.one_batch()[1]
    assert torch.equal(y_na[:, 1:], y_plain) and not y_na[:, 0].any()  # every label was seen in training
    # a label the vocab given lacks is '#na#', where without add_na it is refused naming add_na
    only3 = _multi(vocab=["3"], add_na=True)
    assert only3.vocab == ["#na#", "3"]
    y = only3.valid.one_batch()[1]
    sevens = y_plain[:, 1] == 1
    assert sevens.any() and torch.equal(y[:, 0] == 1, sevens) and torch.equal(y[:, 1] == 1, ~sevens)
    with pytest.raises(PipelineStepError, match=r"not in the vocab you gave.*MultiCategoryBlock\(add_na=True\)"):
        _multi(vocab=["3"])
    torch.manual_seed(0)
    assert vision_learner(na, "simple_cnn").model(y_na.new_zeros(2, 1, 28, 28)).shape == (2, 3)
    # an export keeps add_na: a loaded learner reads a '7' as '#na#' too
    learn = vision_learner(only3, "simple_cnn")
    learn.export(tmp_path / "na.pipekit")
    seven = sorted((MNIST / "valid" / "7").iterdir())[0]
    back = load_learner(tmp_path / "na.pipekit")
    assert back.dls.vocab == ["#na#", "3"] and torch.equal(back.predict(seven)[2], learn.predict(seven)[2])
    with pytest.raises(ParameterError, match=r"encoded=True, add_na=True.*leave add_na out"):
        MultiCategoryBlock(vocab=["3", "7"], encoded=True, add_na=True)


# ---------------------------------------------------------------- show_results(shuffle=), get_preds(with_targs=)
def test_show_results_shuffle_false_shows_the_first_items_in_order(learn, grey_dls, tmp_path, monkeypatch):
    shown: list = []
    real = inference.show_items

    def record(rows, *args, **kwargs):
        shown.append(rows)
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(inference, "show_items", record)
    out = learn.show_results(max_n=3, shuffle=False, path=tmp_path / "in_order.png")
    assert out is not None and out.exists()
    learn.show_results(max_n=3, shuffle=True, path=tmp_path / "shuffled.png")
    first = grey_dls.valid.decode_batch(grey_dls.valid.one_batch(), max_n=3)
    in_order, shuffled = shown

    def same(a, b):
        return all(np.array_equal(np.asarray(x[0]), np.asarray(y[0])) for x, y in zip(a, b))

    assert len(in_order) == 3 and same(in_order, first)
    assert not same(shuffled, first)  # fastai's shuffle=True: items drawn from the whole set
    with pytest.raises(ParameterError, match="show_results: shuffle="):
        learn.show_results(shuffle="yes")


def test_get_preds_with_targs_false_leaves_the_targets_out(learn):
    preds, targs = learn.get_preds()
    p2, t2 = learn.get_preds(with_targs=False)
    assert t2 is None and torch.equal(p2, preds) and targs is not None
    out = learn.get_preds(with_targs=False, with_decoded=True)
    assert len(out) == 3 and out[1] is None and torch.equal(out[2], preds.argmax(1))  # fastai's (preds, None, dec)


# ---------------------------------------------------------------- DataBlock.datasets(verbose=)
def test_datasets_verbose_is_refused_naming_summary():
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter())
    with pytest.raises(ParameterError, match=r"DataBlock.datasets: verbose=True .*dblock.summary\(source\)"):
        dblock.datasets(MNIST, verbose=True)
    with pytest.raises(ParameterError, match=r"unknown argument\(s\) \['sed'\]; did you mean 'seed'"):
        dblock.datasets(MNIST, sed=0)
    assert len(_quiet(dblock.datasets, MNIST, seed=0).valid) == 699


# ---------------------------------------------------------------- AdaptiveConcatPool2d, create_vision_model
def test_adaptive_concat_pool_as_in_chapter_15s_create_head(grey_batch):
    ns: dict = {}
    exec("from pipekit.vision.all import *", ns)
    pool = ns["AdaptiveConcatPool2d"]()
    body = create_body("xresnet18", n_in=1).eval()
    with torch.no_grad():
        feats = body(grey_batch)
        pooled = pool(feats)
    assert pooled.shape == (len(grey_batch), 1024, 1, 1)  # max then average, as fastai's: Flatten follows
    assert torch.allclose(pooled.flatten(1), torch.cat([feats.amax((2, 3)), feats.mean((2, 3))], 1))
    assert torch.allclose(pooled.flatten(1), ConcatPool2d()(feats)[:, [*range(512, 1024), *range(512)]])
    model = nn.Sequential(body, ns["AdaptiveConcatPool2d"](), Flatten(), nn.Linear(1024, 2))
    assert create_body(model) is body  # a body before it is cut off as before pipekit's own pooling
    assert ns["AdaptiveConcatPool2d"](2)(feats).shape == (len(grey_batch), 1024, 2, 2)


def test_adaptive_concat_pool_is_concat_pool2d_in_fastais_order_and_shape(grey_batch):
    ns: dict = {}
    exec("from pipekit.vision.all import *", ns)
    adaptive = ns["AdaptiveConcatPool2d"]
    body = create_body("xresnet18", n_in=1).eval()
    with torch.no_grad():
        feats = body(grey_batch)
    pool = adaptive()
    assert isinstance(pool, ConcatPool2d) and (pool.size, pool.max_first, pool.flatten) == (1, True, False)
    assert torch.equal(pool(feats), ConcatPool2d(max_first=True, flatten=False)(feats))
    # pipekit's heads' layer as it was: average then max, flattened
    assert torch.equal(ConcatPool2d()(feats), torch.cat([feats.mean((2, 3)), feats.amax((2, 3))], 1))
    assert torch.equal(ConcatPool2d(flatten=False)(feats).flatten(1), ConcatPool2d()(feats))
    assert torch.allclose(adaptive(2)(feats), torch.cat([nn.AdaptiveMaxPool2d(2)(feats),
                                                         nn.AdaptiveAvgPool2d(2)(feats)], 1))
    assert ConcatPool2d((2, 1))(feats).shape == (len(grey_batch), 2 * 512 * 2)
    # no weights and no child modules: a learner's file is the same whichever pools its head
    assert pool.state_dict() == {} and list(pool.children()) == [] and ConcatPool2d().state_dict() == {}
    assert [repr(m) for m in (ConcatPool2d(), pool, adaptive(2), ConcatPool2d(max_first=True))] == [
        "ConcatPool2d()", "AdaptiveConcatPool2d()", "AdaptiveConcatPool2d(size=2)", "ConcatPool2d(max_first=True)"]
    for head_pool in (pool, ConcatPool2d(max_first=True)):  # one family: the body is cut before either
        assert create_body(nn.Sequential(body, nn.Sequential(head_pool, Flatten(), nn.Linear(1024, 2)))) is body
    with pytest.raises(ParameterError, match=r"AdaptiveConcatPool2d: size=\(0, 2\) is not accepted"):
        adaptive((0, 2))
    with pytest.raises(ParameterError, match=r"ConcatPool2d: max_first='yes' is not accepted; expected True or False"):
        ConcatPool2d(max_first="yes")


def test_create_vision_model_is_the_model_vision_learner_builds(grey_dls, grey_batch, tmp_path):
    ns: dict = {}
    exec("from pipekit.vision.all import *", ns)
    create_vision_model, create_cnn_model = ns["create_vision_model"], ns["create_cnn_model"]
    torch.manual_seed(0)
    model = create_vision_model("xresnet18", 2, n_in=1, init=None)
    torch.manual_seed(0)
    learned = vision_learner(grey_dls, "xresnet18").model
    torch.manual_seed(0)
    ours = vision_model("xresnet18", 2, n_in=1, lin_ftrs=[512])
    assert _same_weights(model, learned) and _same_weights(model, ours)
    torch.manual_seed(0)
    assert _same_weights(create_cnn_model("xresnet18", 2, n_in=1, init=None), model)
    torch.manual_seed(0)
    fastai_init = create_vision_model("xresnet18", 2, n_in=1)  # fastai's init: kaiming_normal_ on the head
    assert _same_weights(fastai_init.body, model.body) and not _same_weights(fastai_init.head, model.head)
    # on data, trained and exported as vision_learner's model is
    learn = Learner(grey_dls, create_vision_model("simple_cnn", 2, n_in=1), loss_func=CrossEntropyLossFlat())
    learn.export(tmp_path / "m.pipekit")
    back = load_learner(tmp_path / "m.pipekit")
    assert torch.allclose(back.get_preds(dl=grey_dls.valid)[0], learn.get_preds()[0], atol=1e-6)
    with pytest.raises(ParameterError, match=r"create_vision_model: weights= .*pretrained=True.*leave weights out"):
        create_vision_model("xresnet18", 2, weights="IMAGENET1K_V1")
    with pytest.raises(ParameterError, match=r"create_vision_model: pool=False leaves the pooling out of the head, for "
                                             r"a body that pools .*leave pool=True"):
        create_vision_model("xresnet18", 2, pool=False)  # its body gives a feature map, which the head must pool
    with pytest.raises(ParameterError, match=r"create_vision_model\(resnet34, 2, pretrained=False\)"):
        create_vision_model("resnet34", 2)
    with pytest.raises(ParameterError, match=r"create_cnn_model: unknown argument\(s\) \['c_out'\]"):
        create_cnn_model("xresnet18", 2, c_out=3)
