"""The fastai pieces of chapters 5, 7, 15 and 16 a reader reaches for: create_head's options, vision_learner's
custom_head (exported when registered, refused when not), XResNet layer groups for discriminative learning rates,
and the optimisers RAdam, QHAdam, LAMB, Lookahead and ranger, on mnist_tiny and adult."""
from __future__ import annotations

import math
import subprocess
import sys
import warnings
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import DataError, ExportError, ParameterError
from pipekit.data import CategoryBlock, DataBlock, DataLoaders, GrandparentSplitter, TensorStore, get_image_files
from pipekit.data import parent_label
from pipekit.learn import (
    LAMB, MLP, SGD, Adam, CancelFitException, Callback, CrossEntropyLossFlat, Lamb, Learner, Lookahead, QHAdam, RAdam,
    accuracy, ranger,
)
from pipekit.learn.optim import LAMB_MAX_TRUST
from pipekit.vision import ImageBlock, XResNetBody, cnn_learner, create_head, unet, vision_learner, vision_model
from pipekit.vision.models import ResBlock

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mnist_dls():
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dblock.dataloaders(D.path("mnist_tiny"), bs=64, seed=0, device="cpu")


def adult_learner(adult_xy, opt_func, path=None):
    """An MLP on adult's continuous columns: 448 training rows in 7 batches of 64 (not a multiple of Lookahead's k)."""
    x, y = adult_xy
    dls = DataLoaders.from_stores([TensorStore(x[:448]), TensorStore(y[:448])],
                                  [TensorStore(x[448:]), TensorStore(y[448:])], bs=64, seed=0, device="cpu")
    pipekit.set_seed(0)
    return Learner(dls, MLP(4, 2, layers=[16]), loss_func=CrossEntropyLossFlat(), opt_func=opt_func,
                   **({"path": path} if path is not None else {}))


def kinds(head):
    return [type(m).__name__ for m in head]


# ------------------------------------------------------------------------------------------------ create_head
def test_create_head_takes_fastais_options_with_their_meaning():
    x = torch.randn(4, 32, 5, 5)
    default = create_head(32, 3)
    # lin_ftrs=None: one hidden layer of 512, as in fastai; [] none
    assert [m.out_features for m in default if isinstance(m, nn.Linear)] == [512, 3]
    assert kinds(create_head(32, 3, lin_ftrs=[])) == ["ConcatPool2d", "BatchNorm1d", "Dropout", "Linear"]
    assert kinds(default) == ["ConcatPool2d", "BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d", "Dropout",
                              "Linear"]
    assert [m.p for m in default if isinstance(m, nn.Dropout)] == [0.25, 0.5]
    # first_bn=False: no batch-norm on the pooled features, the others stay
    no_first = create_head(32, 3, lin_ftrs=[16], first_bn=False)
    assert kinds(no_first) == ["ConcatPool2d", "Dropout", "Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear"]
    assert no_first[4].num_features == 16
    # lin_first: dropout on the pooled features, each hidden block linear -> ReLU -> batch-norm -> dropout,
    # then a plain linear layer to the outputs
    lin_first = create_head(32, 3, lin_ftrs=[16, 8], ps=[0.1, 0.2, 0.3], lin_first=True)
    assert kinds(lin_first) == ["ConcatPool2d", "Dropout", "Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear", "ReLU",
                                "BatchNorm1d", "Dropout", "Linear"]
    assert [m.p for m in lin_first if isinstance(m, nn.Dropout)] == [0.1, 0.2, 0.3]
    assert [(m.in_features, m.out_features) for m in lin_first if isinstance(m, nn.Linear)] == [(64, 16), (16, 8),
                                                                                                (8, 3)]
    assert [m.num_features for m in lin_first if isinstance(m, nn.BatchNorm1d)] == [16, 8]
    assert kinds(create_head(32, 3, lin_ftrs=[16], lin_first=True, first_bn=False)) == [
        "ConcatPool2d", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    avg = create_head(32, 3, lin_ftrs=[], concat_pool=False, bn_final=True, y_range=(-1, 1))
    assert avg[1].num_features == 32 and isinstance(avg[-2], nn.BatchNorm1d)
    for head in (default, no_first, lin_first, avg):
        head.eval()
        assert head(x).shape == (4, 3)
    out = avg(x)
    assert out.min() > -1 and out.max() < 1
    with pytest.raises(ParameterError, match=r"ps=.*3 of them"):
        create_head(32, 3, lin_ftrs=[16, 8], ps=[0.1, 0.2])
    with pytest.raises(ParameterError, match="lin_ftrs"):
        create_head(32, 3, lin_ftrs=512)
    with pytest.raises(ParameterError, match="ps=1.5"):
        create_head(32, 3, ps=1.5)


def test_vision_model_default_head_keeps_its_layout_and_stored_none():
    """An export stores vision_model's arguments: lin_ftrs=None there still means no hidden layer, and the default
    head's weights keep their names."""
    m = vision_model("simple_cnn", n_out=3, n_in=1)
    assert [k for k in m.head.state_dict() if k.endswith("weight")] == ["1.weight", "3.weight", "5.weight", "7.weight"]
    assert kinds(vision_model("simple_cnn", n_out=3, n_in=1, lin_ftrs=None).head) == [
        "ConcatPool2d", "BatchNorm1d", "Dropout", "Linear"]


# ------------------------------------------------------------------------------------------------ custom_head
HEAD_MODULE = '''
from torch import nn
from pipekit.learn import register_arch


@register_arch("tiny_avg_head")
def tiny_avg_head(nf: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(nf, n_out))
'''


def test_custom_head_replaces_the_built_head_and_trains(mnist_dls):
    pipekit.set_seed(0)
    head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(64, 2))
    learn = cnn_learner(mnist_dls, "simple_cnn", custom_head=head, metrics=accuracy)
    assert learn.model.head is head
    # the body is cut as without a custom head
    plain = vision_learner(mnist_dls, "simple_cnn")
    assert learn.model.body.state_dict().keys() == plain.model.body.state_dict().keys()
    groups = learn.optimizer.layer_groups
    assert len(groups) == 2 and [id(p) for p in groups[1]] == [id(p) for p in head.parameters()]
    learn.fit_one_cycle(2, 1e-2)
    assert learn.validate()[1] > 0.9
    with pytest.raises(ParameterError, match=r"lin_ftrs, y_range shape the head pipekit builds.*custom_head"):
        vision_learner(mnist_dls, "simple_cnn", custom_head=head, lin_ftrs=[8], y_range=(0, 1))
    with pytest.raises(ParameterError, match=r"first_bn shapes the head"):
        vision_model("simple_cnn", 2, n_in=1, custom_head=head, first_bn=False)
    with pytest.raises(ParameterError, match=r"outputs of shape \(2, 5\).*\(2, 2\) is expected"):
        vision_learner(mnist_dls, "simple_cnn", custom_head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                                                          nn.Linear(64, 5)))
    with pytest.raises(ParameterError, match="custom_head"):
        vision_learner(mnist_dls, "simple_cnn", custom_head=lambda x: x)


def test_unregistered_custom_head_export_is_refused_saying_what_to_do(mnist_dls, tmp_path):
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 2))
    learn = vision_learner(mnist_dls, "simple_cnn", custom_head=head, path=tmp_path)
    with pytest.raises(ExportError, match=r"custom_head is a Sequential module that no registered architecture "
                                          r"built.*registered class or factory"):
        learn.export(tmp_path / "nope.pipekit")
    assert not (tmp_path / "nope.pipekit").exists()


def test_registered_custom_heads_export_and_load_in_a_fresh_process(mnist_dls, tmp_path, monkeypatch):
    (tmp_path / "my_heads.py").write_text(HEAD_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_heads

    files = get_image_files(D.path("mnist_tiny") / "valid")[::60]
    scripts = {}
    heads = {"registered": my_heads.tiny_avg_head(64, 2),
             "create_head": create_head(64, 2, lin_ftrs=[16], lin_first=True, first_bn=False)}
    for name, head in heads.items():
        pipekit.set_seed(0)
        learn = vision_learner(mnist_dls, "simple_cnn", custom_head=head, path=tmp_path)
        learn.fit(1, 1e-2)
        f = learn.export(tmp_path / f"{name}.pipekit")
        np.save(tmp_path / f"{name}_expected.npy", learn.get_preds(dl=learn.dls.test_dl(files))[0].numpy())
        scripts[name] = f"""
import sys
import numpy as np
sys.path.insert(0, {str(tmp_path)!r})
{"import my_heads" if name == "registered" else ""}
from pipekit.learn import load_learner
from pipekit.data import get_image_files
learn = load_learner({str(f)!r})
print(type(learn.model.head).__name__, [type(m).__name__ for m in learn.model.head])
files = [f for f in {[str(p) for p in files]!r}]
np.save({str(tmp_path / f"{name}_loaded.npy")!r}, learn.get_preds(dl=learn.dls.test_dl(files))[0].numpy())
"""
    shown = {}
    for name, code in scripts.items():
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        shown[name] = out.stdout
        np.testing.assert_allclose(np.load(tmp_path / f"{name}_loaded.npy"), np.load(tmp_path / f"{name}_expected.npy"),
                                   atol=1e-5)
    assert shown["registered"].startswith("Sequential ['AdaptiveAvgPool2d', 'Flatten', 'Dropout', 'Linear']")
    assert shown["create_head"].startswith("Sequential ['ConcatPool2d', 'Dropout', 'Linear', 'ReLU', 'Dropout', 'Linear']")
    # without the module that registers the head, the load names the architecture to import
    out = subprocess.run([sys.executable, "-c", scripts["registered"].replace("import my_heads", "")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "tiny_avg_head" in out.stderr and "not registered" in out.stderr


# ------------------------------------------------------------------------------------------------ XResNet groups
def test_xresnet_body_gives_stem_then_stages():
    body = vision_model("xresnet18", n_out=2, n_in=1).body
    assert isinstance(body, XResNetBody)
    early, late = body.layer_groups()
    ids = {id(p) for p in early}
    stem = [*body[:3].parameters()]  # fastai's _xresnet_split: the 3 stem convs, then max-pool and every stage
    assert [id(p) for p in stem] == [id(p) for p in early]
    assert [id(p) for p in late] == [id(p) for p in body[3:].parameters()]
    assert not ids & {id(p) for p in late} and len(early) + len(late) == len(list(body.parameters()))
    assert all(isinstance(b, ResBlock) for b in body[7])
    # a body sliced to the stem has nothing after it to split off
    assert len(body[:3].layer_groups()) == 1


def test_xresnet_learner_freeze_and_slice_give_three_groups_their_own_rates(mnist_dls, tmp_path):
    learn = vision_learner(mnist_dls, "xresnet18", path=tmp_path)
    opt = learn.optimizer
    assert opt.n_groups == 3
    body, head = learn.model.body, learn.model.head
    assert [len(g) for g in opt.layer_groups] == [len(list(body[:3].parameters())), len(list(body[3:].parameters())),
                                                  len(list(head.parameters()))]
    conv = {0: body[0][0].weight, 1: body[7][1].convs[0][0].weight, 2: [m for m in head if isinstance(m, nn.Linear)][0].weight}
    learn.freeze()
    assert [conv[i].requires_grad for i in range(3)] == [False, False, True]
    learn.freeze_to(1)
    assert [conv[i].requires_grad for i in range(3)] == [False, True, True]
    before = {i: w.detach().clone() for i, w in conv.items()}

    class Rates(Callback):
        def after_step(self):
            self.lrs = list(self.learn.optimizer.lrs)
            raise CancelFitException()

    rates = Rates()
    learn.fit(1, slice(1e-4, 1e-2), cbs=[rates])
    assert rates.lrs == pytest.approx([1e-4, 1e-3, 1e-2])
    assert torch.equal(conv[0], before[0])  # frozen: the stem did not move
    assert not torch.equal(conv[1], before[1]) and not torch.equal(conv[2], before[2])
    learn.unfreeze()
    learn.fit(1, slice(1e-3), cbs=[rates])  # slice(hi): hi/10 to every group but the head
    assert rates.lrs == pytest.approx([1e-4, 1e-4, 1e-3])
    # a U-Net on an XResNet body: the encoder's two groups, then the decoder
    from pipekit.vision.learner import _encoder_decoder

    assert len(_encoder_decoder(unet("xresnet18", n_out=3, n_in=1))) == 3


# ------------------------------------------------------------------------------------------------ optimisers
def test_radam_takes_torch_radams_steps():
    torch.manual_seed(0)
    for wd, decouple in ((0.0, True), (0.05, True), (0.05, False)):
        w0 = torch.randn(6, 4)
        mine, ref = nn.Parameter(w0.clone()), nn.Parameter(w0.clone())
        opt = RAdam([{"params": [mine]}], lr=3e-2, mom=0.9, sqr_mom=0.99, eps=1e-8, wd=wd, decouple_wd=decouple)
        torch_opt = torch.optim.RAdam([ref], lr=3e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd,
                                      decoupled_weight_decay=decouple)
        for _ in range(40):  # the first 5 steps are un-rectified (rho_t <= 5), the rest rectified
            g = torch.randn(6, 4)
            mine.grad, ref.grad = g.clone(), g.clone()
            opt.step()
            torch_opt.step()
            torch.testing.assert_close(mine.detach(), ref.detach(), rtol=1e-6, atol=1e-6)


def test_radam_trains_as_torch_radam_in_a_learner(adult_xy):
    # torch adds eps to the root of the raw second moment, pipekit (as fastai) to the debiased one's: with an eps too
    # small to matter the two take the same steps (test_radam_adds_eps_as_fastai_does checks where it matters)
    def torch_radam(params, lr):
        return torch.optim.RAdam(params, lr=lr, betas=(0.9, 0.99), eps=1e-10, weight_decay=0.01,
                                 decoupled_weight_decay=True)

    mine, ref = adult_learner(adult_xy, partial(RAdam, wd=0.01, eps=1e-10)), adult_learner(adult_xy, torch_radam)
    mine.fit(2, 1e-2)
    ref.fit(2, 1e-2)
    for p, q in zip(mine.model.parameters(), ref.model.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-5)
    assert mine.recorder.values[-1][0] < mine.recorder.values[0][0]  # the training loss came down


def test_radam_adds_eps_as_fastai_does():
    """fastai's rectified step is ``lr * r * (grad_avg / debias1) / (sqrt(sqr_avg / debias2) + eps)``: with a constant
    gradient ``g`` the debiased averages are ``g`` and ``g**2``, so each rectified step is ``lr * r * g / (g + eps)``
    and each of the first (``rho_t <= 5``) steps ``lr * g``. fastai 2.8.12's RAdam ends at -3.0154563e-4."""
    lr, sqr_mom, eps, g = 1e-3, 0.99, 1e-5, 1e-5
    rho_inf, expected = 2 / (1 - sqr_mom) - 1, 0.0
    for t in range(1, 11):
        rho = rho_inf - 2 * t * sqr_mom ** t / (1 - sqr_mom ** t)
        if rho > 5:
            expected -= lr * math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)) * g / (
                g + eps)
        else:
            expected -= lr * g
    w = nn.Parameter(torch.zeros(3))
    opt = RAdam([{"params": [w]}], lr=lr)  # fastai's defaults: mom 0.9, sqr_mom 0.99, eps 1e-5
    for _ in range(10):
        w.grad = torch.full((3,), g)
        opt.step()
    assert expected == pytest.approx(-3.0154563e-4, rel=1e-6)
    np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-5)


def test_lamb_scales_adams_update_by_the_trust_ratio():
    w0 = np.array([[0.3, -1.2, 2.0], [0.5, 0.0, -0.7]], dtype=np.float32)
    g1 = np.array([[0.1, 0.4, -0.2], [0.05, -0.3, 0.2]], dtype=np.float32)
    g2 = np.array([[-0.2, 0.1, 0.3], [0.1, 0.1, -0.4]], dtype=np.float32)
    lr, mom, sqr, eps, wd = 0.01, 0.9, 0.99, 1e-5, 0.1
    w = nn.Parameter(torch.tensor(w0))
    opt = Lamb([{"params": [w]}], lr=lr, mom=mom, sqr_mom=sqr, eps=eps, wd=wd)
    m = v = np.zeros_like(w0)
    want = w0.astype(np.float64)
    for t, g in enumerate((g1, g2), start=1):
        w.grad = torch.tensor(g)
        opt.step()
        want = want * (1 - lr * wd)  # decoupled weight decay first
        m, v = mom * m + (1 - mom) * g, sqr * v + (1 - sqr) * g * g
        update = (m / (1 - mom ** t)) / (np.sqrt(v / (1 - sqr ** t)) + eps)
        trust = np.linalg.norm(want) / np.linalg.norm(update)
        assert 0.5 < trust < LAMB_MAX_TRUST  # a real ratio, not the clip
        want = want - lr * trust * update
        np.testing.assert_allclose(w.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    # zero weights: the trust ratio is 1 (Adam's step); huge weights: clipped at LAMB_MAX_TRUST
    zero, big = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.full((3,), 1000.0))
    opt = LAMB([{"params": [zero, big]}], lr=0.1)
    zero.grad, big.grad = torch.ones(3), torch.ones(3)
    opt.step()
    adam_step = 1 / (1 + 1e-5)
    torch.testing.assert_close(zero.detach(), torch.full((3,), -0.1 * adam_step))
    torch.testing.assert_close(big.detach(), torch.full((3,), 1000 - 0.1 * LAMB_MAX_TRUST * adam_step))


def test_qhadam_by_hand_and_as_adam_when_nu_is_one():
    w0, grads = torch.tensor([1.0, -2.0, 0.5]), [torch.tensor([0.3, -0.1, 0.2]), torch.tensor([-0.2, 0.4, 0.1])]
    w = nn.Parameter(w0.clone())
    lr, mom, sqr, nu1, nu2, eps = 0.1, 0.9, 0.99, 0.7, 0.8, 1e-8
    opt = QHAdam([{"params": [w]}], lr=lr, mom=mom, sqr_mom=sqr, nu_1=nu1, nu_2=nu2, eps=eps)
    want, m, v = w0.double().numpy(), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        w.grad = g.clone()
        opt.step()
        gn = g.double().numpy()
        m, v = mom * m + (1 - mom) * gn, sqr * v + (1 - sqr) * gn ** 2
        num = (1 - nu1) * gn + nu1 * m / (1 - mom ** t)
        den = np.sqrt((1 - nu2) * gn ** 2 + nu2 * v / (1 - sqr ** t)) + eps
        want = want - lr * num / den
        np.testing.assert_allclose(w.detach().numpy(), want, rtol=1e-5)
    # nu_1 = nu_2 = 1 is Adam
    a, b = nn.Parameter(w0.clone()), nn.Parameter(w0.clone())
    qh = QHAdam([{"params": [a]}], lr=0.05, mom=0.9, sqr_mom=0.99, nu_1=1.0, nu_2=1.0, eps=1e-5)
    adam = Adam([{"params": [b]}], lr=0.05, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.0, fused=False)
    for g in grads * 3:
        a.grad, b.grad = g.clone(), g.clone()
        qh.step()
        adam.step()
    torch.testing.assert_close(a.detach(), b.detach())
    with pytest.raises(ParameterError, match="nu_1"):
        QHAdam([{"params": [a]}], lr=0.1, nu_1=1.5)


def test_lookahead_moves_the_slow_weights_every_k_steps():
    w0 = torch.tensor([1.0, -1.0])
    grads = [torch.tensor([0.5, -0.25]) * (i + 1) for i in range(7)]
    w = nn.Parameter(w0.clone())
    opt = Lookahead(SGD([{"params": [w]}], lr=0.1), k=3, alpha=0.4)
    slow, fast = w0.clone(), w0.clone()
    for i, g in enumerate(grads, start=1):
        w.grad = g.clone()
        opt.step()
        fast = fast - 0.1 * g
        if i % 3 == 0:  # slow += alpha * (fast - slow); the fast weights restart from the slow ones
            slow = slow + 0.4 * (fast - slow)
            fast = slow.clone()
        torch.testing.assert_close(w.detach(), fast)
        torch.testing.assert_close(opt.state[w]["lookahead_slow"], slow)
    assert opt.state[w]["lookahead_step"] == 7
    # the wrapped optimiser's hyper-parameters are Lookahead's: a schedule setting lr reaches it
    opt.param_groups[0]["lr"] = 0.5
    assert opt.opt.param_groups[0]["lr"] == 0.5
    with pytest.raises(ParameterError, match="Lookahead wraps an optimiser"):
        Lookahead(SGD, k=3)
    with pytest.raises(ParameterError, match="k=0"):
        Lookahead(SGD([{"params": [w]}], lr=0.1), k=0)


def mnist_accuracy(dls, opt_func, lr):
    pipekit.set_seed(0)
    learn = vision_learner(dls, "simple_cnn", opt_func=opt_func, metrics=accuracy)
    learn.fit_one_cycle(3, lr)
    return learn.validate()[1]


@pytest.mark.parametrize("opt_func, lr", [
    pytest.param(RAdam, 1e-2, id="RAdam"), pytest.param(QHAdam, 1e-2, id="QHAdam"), pytest.param(Lamb, 1e-2, id="Lamb"),
    pytest.param(lambda params, lr: Lookahead(SGD(params, lr, mom=0.9)), 0.1, id="Lookahead(SGD)"),
    pytest.param(ranger, 1e-2, id="ranger")])
def test_each_optimiser_trains_mnist_tiny(mnist_dls, opt_func, lr):
    assert mnist_accuracy(mnist_dls, opt_func, lr) > 0.93  # 3s and 7s: a constant guess gets about 0.5


@pytest.mark.parametrize("opt_func", [RAdam, QHAdam, Lamb, ranger,
                                      lambda params, lr: Lookahead(Adam(params, lr, fused=False), k=5)],
                         ids=["RAdam", "QHAdam", "Lamb", "ranger", "Lookahead(Adam)"])
def test_a_checkpoint_resumes_the_new_optimisers_exactly(adult_xy, tmp_path, opt_func):
    def run(stop_after=None):
        learn = adult_learner(adult_xy, opt_func, path=tmp_path)

        class Interrupt(Callback):
            def after_epoch(self):
                if stop_after is not None and self.learn.epoch == stop_after:
                    self.learn.save("ckpt")
                    raise CancelFitException()

        learn.fit_one_cycle(3, 1e-2, cbs=[Interrupt()])
        return learn

    full = run()
    run(stop_after=0)
    pipekit.set_seed(123)
    resumed = adult_learner(adult_xy, opt_func, path=tmp_path)
    resumed.load("ckpt")
    assert resumed.resume_epoch == 1
    state = resumed.optimizer.state_dict()["opt"]["state"]
    if isinstance(resumed.optimizer.opt, Lookahead):  # 7 steps taken: counts off the k-step rhythm, slow weights kept
        assert {st["lookahead_step"] for st in state.values()} == {7} and all("lookahead_slow" in st for st in state.values())
    resumed.fit_one_cycle(3, 1e-2, start_epoch=resumed.resume_epoch)
    for a, b in zip(resumed.model.state_dict().values(), full.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # an optimiser started afresh would not follow the uninterrupted run
    fresh = adult_learner(adult_xy, opt_func, path=tmp_path)
    fresh.load("ckpt", with_opt=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh.fit_one_cycle(3, 1e-2, start_epoch=1)
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(fresh.model.state_dict().values(),
                                                                  full.model.state_dict().values()))


def test_lookahead_refuses_slow_weights_of_another_shape():
    w = nn.Parameter(torch.ones(3))
    opt = ranger([{"params": [w]}], lr=0.1)
    w.grad = torch.ones(3)
    opt.step()
    sd = opt.state_dict()
    assert set(sd["state"][0]) == {"grad_avg", "sqr_avg", "step", "lookahead_slow", "lookahead_step"}
    again = ranger([{"params": [w]}], lr=0.1)
    again.load_state_dict(sd)
    assert torch.equal(again.state[w]["lookahead_slow"], opt.state[w]["lookahead_slow"])
    assert again.opt.state[w]["step"] == 1 and "lookahead_slow" not in again.opt.state[w]
    bad = {"state": {0: {**sd["state"][0], "lookahead_slow": torch.zeros(4)}}, "param_groups": sd["param_groups"]}
    with pytest.raises(DataError, match=r"Lookahead state of parameter 0.*shape \(3,\)"):
        ranger([{"params": [w]}], lr=0.1).load_state_dict(bad)


def test_ranger_has_fastais_defaults():
    w = nn.Parameter(torch.ones(2))
    opt = ranger([{"params": [w]}], lr=1e-3)
    g = opt.param_groups[0]
    assert (g["mom"], g["sqr_mom"], g["eps"], g["weight_decay"]) == (0.95, 0.99, 1e-6, 0.01)
    assert (opt.k, opt.alpha) == (6, 0.5) and math.isclose(g["lr"], 1e-3)


# ------------------------------------------------------------------------------------------------ tabular embeddings
def test_tabular_embeddings_start_small_as_fastais():
    """fastai's tabular and EmbeddingNN models start every table as its Embedding does: a normal of std 0.01 truncated
    at two of them (torch's N(0, 1) start gives each table a std near 1); drawn from the seed, table by table."""
    from pipekit.tabular import Categorify, CollabDataLoaders, FillMissing, Normalize, TabularDataLoaders
    from pipekit.tabular import collab_learner, tabular_learner

    cat = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
    dls = TabularDataLoaders.from_csv(D.path("adult_sample") / "adult.csv", y_names="salary", cat_names=cat,
                                      cont_names=["age", "fnlwgt", "education-num"],
                                      procs=[Categorify, FillMissing, Normalize], bs=64, seed=0)
    tables = []
    for _ in range(2):
        pipekit.set_seed(0)
        tables.append([e.weight.detach().clone() for e in tabular_learner(dls, layers=[200, 100]).model.embeds])
    assert len(tables[0]) == len(cat) + 1  # the columns and FillMissing's one _na column
    for w, again in zip(*tables):
        assert float(w.std()) < 0.02 and float(w.abs().max()) <= 0.02
        assert torch.equal(w, again)
    cdls = CollabDataLoaders.from_csv(D.path("movie_lens_sample") / "ratings.csv", bs=64, seed=0)
    for e in collab_learner(cdls, use_nn=True, y_range=(0.5, 5.5)).model.embeds:
        assert float(e.weight.detach().std()) < 0.02 and float(e.weight.detach().abs().max()) <= 0.02


# ------------------------------------------------------------------------------------------------ label smoothing
def _fastai_label_smoothing(out, targ, eps, weight, reduction):
    """fastai 2.8.12's LabelSmoothingCrossEntropy.forward, written out (class axis 1)."""
    c = out.shape[1]
    log_preds = torch.log_softmax(out, dim=1)
    if reduction == "sum":
        smooth = -log_preds.sum()
    else:
        smooth = -log_preds.sum(dim=1)
        if reduction == "mean":
            smooth = smooth.mean()
    return smooth * eps / c + (1 - eps) * torch.nn.functional.nll_loss(log_preds, targ, weight=weight,
                                                                       reduction=reduction)


def test_label_smoothing_takes_fastais_weight(tmp_path):
    from pipekit.learn import LabelSmoothingCrossEntropy, LabelSmoothingCrossEntropyFlat, load_learner
    from pipekit.tabular import TabularDataLoaders, tabular_learner
    import polars as pl

    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(400)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education"],
                                     cont_names=["age", "hours-per-week"], bs=64, seed=0)
    pipekit.set_seed(0)
    learn = tabular_learner(dls, layers=[8], loss_func=LabelSmoothingCrossEntropy(eps=0.2, weight=[1.0, 3.0]))
    torch.manual_seed(0)
    out, targ = torch.randn(12, 3), torch.randint(0, 3, (12,))
    w = [0.5, 2.0, 1.0]
    for reduction in ("mean", "sum", "none"):
        want = _fastai_label_smoothing(out, targ, 0.1, torch.tensor(w), reduction)
        torch.testing.assert_close(LabelSmoothingCrossEntropy(0.1, w, reduction)(out, targ), want)
        # the flat version over (bs, seq, n_classes)
        got = LabelSmoothingCrossEntropyFlat(eps=0.1, weight=w, reduction=reduction)(out.reshape(3, 4, 3),
                                                                                      targ.reshape(3, 4))
        torch.testing.assert_close(got, want)
    # items of ignore_index (-100) are left out of both terms
    ignored = torch.cat([targ, torch.tensor([-100, -100])])
    noisy = torch.cat([out, torch.randn(2, 3)])
    torch.testing.assert_close(LabelSmoothingCrossEntropyFlat(weight=w)(noisy, ignored),
                               _fastai_label_smoothing(out, targ, 0.1, torch.tensor(w), "mean"))
    # a learner trained with the weighted loss exports it and loads it back in a fresh process
    learn.fit(1, 1e-2)
    path = learn.export(tmp_path / "ls.pipekit")
    code = ("import sys, torch; from pipekit.learn import load_learner; l = load_learner(sys.argv[1]); "
            "f = l.loss_func; print(type(f).__name__, f.eps, f.weight_list, f.weight.tolist())")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["LabelSmoothingCrossEntropy", "0.2", "[1.0,", "3.0]", "[1.0,", "3.0]"]
    loaded = load_learner(path)
    torch.testing.assert_close(loaded.get_preds(dl=dls.valid, with_loss=True)[2],
                               learn.get_preds(dl=dls.valid, with_loss=True)[2])
