"""Chapters 15 and 16 as a reader writes them: callbacks that read the loop's state as their own, cancel a
stage, change the loss, ask to run after another; custom splitters and bodies, on Fashion-MNIST."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.learn import (
    Callback, CancelBackwardException, CancelBatchException, CancelStepException, Learner, Recorder, accuracy,
    params, simple_cnn,
)
from pipekit.learn.callbacks import sort_callbacks
from pipekit.vision import Normalize, create_body, dataloaders_from_arrays, vision_learner, xresnet18


def make_dls():
    torch.set_num_threads(1)
    p = D.path("fashion_mnist")
    xt, yt = D.read_idx(p / "train-images-idx3-ubyte.gz")[:256], D.read_idx(p / "train-labels-idx1-ubyte.gz")[:256]
    xv, yv = D.read_idx(p / "t10k-images-idx3-ubyte.gz")[:128], D.read_idx(p / "t10k-labels-idx1-ubyte.gz")[:128]
    return dataloaders_from_arrays(xt, yt, xv, yv, vocab=[str(i) for i in range(10)], bs=64, seed=42,
                                   batch_tfms=[Normalize.from_stats([0.286], [0.353])])


@pytest.fixture(scope="module")
def dls():
    return make_dls()


def learner(dls, **kw):
    pipekit.set_seed(0)
    return Learner(dls, simple_cnn(n_in=1, n_out=10, channels=(8, 16)), metrics=accuracy, **kw)


def test_cancel_step_and_backward_run_their_cancel_events(dls):
    class SkipStep(Callback):
        def before_fit(self):
            self.log_ = []

        def before_step(self):
            raise CancelStepException

        def after_cancel_step(self):
            self.log_.append("after_cancel_step")

        def after_step(self):
            self.log_.append("after_step")

    class SkipBackward(SkipStep):
        def before_step(self):
            self.log_.append("before_step")

        def before_backward(self):
            raise CancelBackwardException

        def after_cancel_backward(self):
            self.log_.append("after_cancel_backward")

        def after_backward(self):
            self.log_.append("after_backward")

    step, back = SkipStep(), SkipBackward()
    learn = learner(dls, cbs=step)
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1, 1e-2)
    assert step.log_ == ["after_cancel_step", "after_step"] * 4  # 256 items in batches of 64
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))  # no step was taken
    learner(dls, cbs=back).fit(1, 1e-2)
    # the backward pass is skipped, the step still runs (on no gradients)
    assert back.log_[:4] == ["after_cancel_backward", "after_backward", "before_step", "after_step"]


def test_get_preds_skips_a_validation_batch_a_callback_cancels(dls):
    class SkipFirstValid(Callback):
        def before_batch(self):
            if not self.training and self.iter == 0:
                raise CancelBatchException

    learn = learner(dls)
    learn.fit(1, 1e-2)
    preds, targs = learn.get_preds()
    cut_preds, cut_targs = learn.get_preds(cbs=SkipFirstValid())
    assert len(cut_preds) == len(cut_targs) == len(preds) - 64
    torch.testing.assert_close(cut_preds, preds[64:])
    assert torch.equal(cut_targs, targs[64:])


def test_the_books_loss_penalty_in_after_loss(dls):
    class OnLoss(Callback):  # chapter 16 writes self.learn.loss += ...: it is recorded, not back-propagated
        def after_loss(self):
            self.learn.loss = self.learn.loss + 10.0 * sum((p ** 2).sum() for p in self.model.parameters())

    class OnLossGrad(Callback):  # what is back-propagated: loss_grad
        def after_loss(self):
            if self.training:
                self.learn.loss_grad = self.learn.loss_grad + 0.1 * sum((p ** 2).sum() for p in self.model.parameters())

    # each on loaders of its own: the same batches in the same order
    plain, recorded, decayed = learner(make_dls()), learner(make_dls(), cbs=OnLoss()), learner(make_dls(), cbs=OnLossGrad())
    for learn in (plain, recorded, decayed):
        learn.fit(1, 1e-2)

    def norm(learn):
        return float(sum((p.detach() ** 2).sum() for p in learn.model.parameters()))

    assert norm(recorded) == pytest.approx(norm(plain), rel=1e-6)
    assert recorded.recorder.values[-1][0] > 10 * plain.recorder.values[-1][0]
    assert norm(decayed) < 0.9 * norm(plain)


def test_callbacks_read_the_loop_state_as_their_own(dls):
    seen = {}

    class Peek(Callback):
        def after_pred(self):
            seen.update(model=self.model is self.learn.model, pred=self.pred.shape, training=self.training,
                        n_epoch=self.n_epoch, xb=self.xb[0].shape[0])

    learner(dls, cbs=Peek()).fit(1, 1e-2)
    assert seen == {"model": True, "pred": torch.Size([64, 10]), "training": False, "n_epoch": 1, "xb": 64}
    with pytest.raises(AttributeError, match="not added to a Learner"):
        Peek().model  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'modle'"):
        Peek().modle  # noqa: B018


def test_run_after_and_run_before(dls):
    rows = []

    class ReadsRow(Callback):
        run_after = Recorder
        order = -100  # would run first without run_after

        def after_epoch(self):
            rows.append(list(self.recorder.values[-1]))

    class First(Callback):
        run_before = "recorder"
        order = 200

    learn = learner(dls, cbs=[ReadsRow(), First()])
    learn.fit(2, 1e-2)
    assert rows == learn.recorder.values
    names = [type(c).__name__ for c in sort_callbacks(learn.cbs)]
    assert names.index("First") < names.index("Recorder") < names.index("ReadsRow")

    class A(Callback):
        run_after = "b"

    class B(Callback):
        run_after = "a"

    with pytest.raises(ParameterError, match="cycle"):
        learner(dls, cbs=[A(), B()])


def test_vision_learner_takes_a_splitter_and_create_body_a_factory(dls):
    def three(m):
        return [params(m.body[:3]), params(m.body[3:]), params(m.head)]

    learn = vision_learner(dls, "xresnet18", splitter=three)
    assert learn.optimizer.n_groups == 3
    learn.fit(1, slice(1e-4, 1e-2))
    lrs = learn.recorder.group_lrs[-1]
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1e-2) and lrs[0] < lrs[1] < lrs[2]
    body = create_body(xresnet18, n_in=1)
    assert body(torch.zeros(2, 1, 28, 28)).shape[:2] == (2, 512)
    assert isinstance(create_body(xresnet18, n_in=1, cut=-1), nn.Module)
    with pytest.raises(ParameterError, match="factory function"):
        create_body(3)


def test_ch13_ch14_a_cnn_from_conv_layers_and_the_books_resnet_block(dls):
    from pipekit.learn import ConvLayer, Flatten, Module, NormType, noop, sequential
    from pipekit.vision import ResBlock, cnn_learner

    def _conv_block(ni, nf, stride):  # chapter 14's block, as the book spells it
        return sequential(ConvLayer(ni, nf, stride=stride),
                          ConvLayer(nf, nf, act_cls=None, norm_type=NormType.BatchZero))

    class BookResBlock(Module):
        def __init__(self, ni, nf, stride=1):
            self.convs = _conv_block(ni, nf, stride)
            self.idconv = noop if ni == nf else ConvLayer(ni, nf, 1, act_cls=None)
            self.pool = noop if stride == 1 else nn.AvgPool2d(2, ceil_mode=True)

        def forward(self, x):
            return torch.relu(self.convs(x) + self.idconv(self.pool(x)))

    model = sequential(ConvLayer(1, 8, ks=5), BookResBlock(8, 16, 2), ResBlock(1, 16, 32, stride=2),
                       nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(32, 10))
    assert isinstance(model, nn.Sequential) and model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    same = BookResBlock(8, 8)  # the identity shortcut: noop, no parameters of its own
    assert same.idconv is noop and same.pool is noop and len(list(same.parameters())) == len(list(same.convs.parameters()))
    block = model[1]
    x = torch.randn(2, 8, 28, 28)
    with torch.no_grad():  # the zero-scaled batch-norm (shift 1e-3, as fastai's) makes the block start as ReLU of
        torch.testing.assert_close(block.train()(x), torch.relu(block.idconv(block.pool(x)) + 1e-3))  # its shortcut
    pipekit.set_seed(0)
    learn = Learner(dls, model, metrics=accuracy)
    learn.fit_one_cycle(6, 3e-2)
    assert learn.recorder.values[-1][2] > 0.3  # ten classes: chance is 0.1
    seq = ConvLayer(4, 6, ks=3, ndim=1)
    assert seq(torch.randn(2, 4, 10)).shape == (2, 6, 10)
    up = ConvLayer(6, 3, ks=2, stride=2, padding=0, transpose=True, act_cls=None)
    assert up(torch.randn(1, 6, 7, 7)).shape == (1, 3, 14, 14)
    assert ConvLayer(3, 8, norm_type=None)[0].bias is not None  # no norm: the conv has a bias
    assert type(ConvLayer(3, 8, norm_type=NormType.Instance)[1]).__name__ == "InstanceNorm2d"
    with pytest.raises(ParameterError, match=r"norm_type.*'batch_zero' \(NormType.BatchZero\)"):
        ConvLayer(3, 8, norm_type="weight")
    # chapter 13's simple_cnn written with the book's helpers: a function among the layers is one too
    simple = sequential(ConvLayer(1, 4, stride=2), ConvLayer(4, 8, stride=2), ConvLayer(8, 16, stride=2),
                        ConvLayer(16, 32, stride=2), ConvLayer(32, 10, stride=2, act_cls=None), Flatten(),
                        lambda x: x * 2)
    assert simple(torch.zeros(3, 1, 28, 28)).shape == (3, 10) and Flatten(full=True)(torch.zeros(3, 4)).shape == (12,)
    with pytest.raises(ParameterError, match=r"layer 0 is .*give an instance, e.g. nn.ReLU\(\)"):
        sequential(nn.ReLU)
    assert cnn_learner(dls, "xresnet18").optimizer.n_groups == 3  # stem + stages 1-2, stages 3-4, head


def test_create_body_pretrained_loads_the_imagenet_weights_or_says_which_exist():
    from pipekit.vision.efficientnet import efficientnet_lite_body

    body = create_body("efficientnet_lite0", pretrained=True)
    ref, _ = efficientnet_lite_body("lite0", pretrained=True)
    assert body.state_dict().keys() == ref.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(body.state_dict().values(), ref.state_dict().values()))
    random = create_body("efficientnet_lite0")
    assert not torch.equal(next(iter(random.parameters())), next(iter(body.parameters())))
    with pytest.raises(ParameterError, match="ImageNet weights for efficientnet_lite0"):
        create_body("xresnet18", pretrained=True)
    with pytest.raises(ParameterError, match=r"cut=-2 keeps none of the 2 children of XResNet \(XResNetBody, "
                                             r"Sequential\); cut=None \(the default\) takes its body"):
        create_body("xresnet18", cut=-2)


def test_vision_learner_starts_from_imagenet_weights_where_pipekit_has_them(dls):
    # the book's learners start pretrained; an arch without weights starts random, as pretrained=False does
    book = vision_learner(dls, "efficientnet_lite0")
    ref = create_body("efficientnet_lite0", n_in=1, pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(book.model.body.state_dict().values(), ref.state_dict().values()))
    convs = [p for m in book.model.body.modules() if isinstance(m, nn.Conv2d) for p in m.parameters()]
    assert convs and not any(p.requires_grad for p in convs)  # frozen until fine_tune (batch-norms train, as in fastai)
    assert all(p.requires_grad for p in book.model.head.parameters())
    random = vision_learner(dls, "efficientnet_lite0", pretrained=False)
    assert all(p.requires_grad for p in random.model.parameters())
    assert not torch.equal(next(random.model.body.parameters()), next(book.model.body.parameters()))
    assert all(p.requires_grad for p in vision_learner(dls, "xresnet18").model.parameters())
