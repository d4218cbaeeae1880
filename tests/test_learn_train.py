"""Training on real data (Fashion-MNIST subset): one-cycle CNN vs logistic regression, lr_find, fine_tune,
determinism, whole-set metrics and checkpoint resume."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataLoaders, TensorStore
from pipekit.data.external import read_idx
from pipekit.learn import (
    Callback, CancelBatchException, CancelFitException, CrossEntropyLossFlat, Learner, accuracy, body_head_splitter,
    NonFiniteError, error_rate, simple_cnn,
)

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
N_TRAIN, N_VALID = 6000, 1000


@pytest.fixture(scope="module", autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine is shared; results must not depend on thread count
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def fmnist():
    root = D.path("fashion_mnist")
    x_tr = read_idx(root / "train-images-idx3-ubyte.gz")[:N_TRAIN]
    y_tr = read_idx(root / "train-labels-idx1-ubyte.gz")[:N_TRAIN].astype(np.int64)
    x_va = read_idx(root / "t10k-images-idx3-ubyte.gz")[:N_VALID]
    y_va = read_idx(root / "t10k-labels-idx1-ubyte.gz")[:N_VALID].astype(np.int64)
    return x_tr, y_tr, x_va, y_va


def make_dls(fmnist, n_train=N_TRAIN, bs=64, seed=0):
    x_tr, y_tr, x_va, y_va = fmnist
    to_x = lambda a: (a[:, None].astype(np.float32) / 255.0 - 0.286) / 0.353  # noqa: E731 - dataset mean/std
    return DataLoaders.from_stores([TensorStore(to_x(x_tr[:n_train])), TensorStore(y_tr[:n_train])],
                                   [TensorStore(to_x(x_va)), TensorStore(y_va)],
                                   blocks=(CategoryBlock(), CategoryBlock(vocab=CLASSES)), bs=bs, seed=seed,
                                   device="cpu", num_workers=0)


def make_learner(dls, channels=(16, 32, 64), **kw):
    return Learner(dls, simple_cnn(n_in=1, n_out=10, channels=channels), splitter=body_head_splitter,
                   metrics=[accuracy, error_rate], **kw)


def logistic_regression_accuracy(x_tr, y_tr, x_va, y_va) -> float:
    """Multinomial logistic regression on raw pixels, fitted with full-batch L-BFGS (plain torch)."""
    torch.manual_seed(0)
    X = torch.tensor(x_tr.reshape(len(x_tr), -1) / 255.0, dtype=torch.float32)
    Y = torch.tensor(y_tr)
    lin = nn.Linear(X.shape[1], 10)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1, max_iter=60, history_size=10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(lin(X), Y) + 1e-4 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = lin(torch.tensor(x_va.reshape(len(x_va), -1) / 255.0, dtype=torch.float32)).argmax(1).numpy()
    return float((pred == y_va).mean())


def test_cnn_one_cycle_beats_logistic_regression(fmnist):
    x_tr, y_tr, x_va, y_va = fmnist
    base_acc = logistic_regression_accuracy(x_tr, y_tr, x_va, y_va)
    assert 0.75 < base_acc < 0.86  # the baseline is a real one

    pipekit.set_seed(0)
    learn = make_learner(make_dls(fmnist))
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)  # default picked from CategoryBlock.loss_kind
    learn.fit_one_cycle(4, 1e-2)
    acc = learn.recorder.value("accuracy")
    assert acc > base_acc + 0.01, (acc, base_acc)
    # the one-cycle lr rose then fell, momentum did the opposite
    lrs = np.array(learn.recorder.lrs)
    moms = np.array(learn.recorder.moms)
    peak = int(lrs.argmax())
    assert 0 < peak < len(lrs) - 1 and abs(lrs.max() - 1e-2) < 1e-4 and lrs[-1] < 1e-5
    assert moms[peak] == pytest.approx(0.85, abs=1e-3) and moms[0] == pytest.approx(0.95, abs=1e-3)
    # the recorded valid loss/accuracy are over the whole set (1000 items, last batch of 40)
    preds, targs = learn.get_preds()
    assert preds.shape == (N_VALID, 10) and torch.allclose(preds.sum(1), torch.ones(N_VALID), atol=1e-5)
    assert float((preds.argmax(1) == targs).float().mean()) == pytest.approx(acc, abs=1e-6)
    loss_all = float(nn.functional.nll_loss(preds.log(), targs))
    assert learn.recorder.value("valid_loss") == pytest.approx(loss_all, rel=1e-4)
    assert learn.recorder.plot_loss().exists()


def test_same_seed_same_run_on_cpu(fmnist):
    runs = []
    for _ in range(2):
        pipekit.set_seed(1)
        learn = make_learner(make_dls(fmnist, n_train=512, seed=3), channels=(4, 8))
        learn.fit(1, 3e-3)
        runs.append((learn.recorder.losses, learn.recorder.values[0][0:2]))
    assert runs[0] == runs[1]


def test_lr_find_suggestions_finite_and_plotted(fmnist, tmp_path):
    pipekit.set_seed(0)
    learn = make_learner(make_dls(fmnist, n_train=3200, bs=32), channels=(4, 8))
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    sug = learn.lr_find(num_it=60, path=tmp_path / "lr_find.png")
    for v in (sug.valley, sug.steep, sug.minimum):
        assert math.isfinite(v) and 1e-7 <= v <= 10
    assert 1e-5 < sug.valley < 1.0  # a usable rate for this model and data
    # the valley comes before the loss bottoms out, and after the loss began to fall from its peak so far
    at_valley = float(np.interp(np.log(sug.valley), np.log(sug.lrs), sug.losses))
    assert sug.valley <= sug.minimum * 10  # minimum = (lr of the lowest loss) / 10
    assert at_valley < sug.losses[sug.lrs <= sug.valley].max()
    assert (tmp_path / "lr_find.png").stat().st_size > 1000
    assert len(sug.lrs) >= 30 and np.all(np.diff(sug.lrs) > 0)
    # the model is restored after the search
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())


class Snapshots(Callback):
    """Records which parameters each fit changed."""

    def __init__(self):
        self.changed: list[set[str]] = []

    def before_fit(self):
        self._start = {n: p.detach().clone() for n, p in self.learn.model.named_parameters()}

    def after_fit(self):
        self.changed.append({n for n, p in self.learn.model.named_parameters() if not torch.equal(p, self._start[n])})


def test_fine_tune_freezes_body_then_unfreezes(fmnist):
    pipekit.set_seed(0)
    learn = make_learner(make_dls(fmnist, n_train=1024), channels=(4, 8))
    snaps = Snapshots()
    learn.fine_tune(1, base_lr=1e-2, freeze_epochs=1, cbs=[snaps])
    frozen, unfrozen = snaps.changed
    names = [n for n, _ in learn.model.named_parameters()]
    conv = {n for n in names if n.startswith("0.") and n.endswith("0.weight")}  # body conv weights
    bn = {n for n in names if n.startswith("0.") and n.endswith(("1.weight", "1.bias"))}  # body batch-norm
    head = {n for n in names if n.startswith("1.")}
    assert conv and bn and head
    assert not (conv & frozen), "body convolutions must not change while frozen"
    assert bn <= frozen, "batch-norm stays trainable while frozen"
    assert head <= frozen
    assert conv | head <= unfrozen
    # discriminative rates in the unfrozen phase: body lr is base_lr/2/100 of head's at the peak
    peak = max(learn.recorder.group_lrs, key=lambda g: g[-1])
    assert peak[-1] == pytest.approx(5e-3, rel=1e-2) and peak[-1] / peak[0] == pytest.approx(100)


def test_summary_lists_layers_and_frozen_parameters(fmnist):
    learn = make_learner(make_dls(fmnist, n_train=256), channels=(4, 8))
    learn.freeze()
    text = learn.summary(show=False)
    assert "Conv2d" in text and "64x4x14x14" in text and "BatchNorm2d" in text
    body_conv = sum(p.numel() for n, p in learn.model.named_parameters() if n.startswith("0.") and n.endswith("0.weight"))
    total = sum(p.numel() for p in learn.model.parameters())
    assert f"Total params: {total:,}  trainable: {total - body_conv:,}  frozen: {body_conv:,}" in text


def test_fine_tune_of_one_group_trains_the_whole_model(fmnist):
    class Epochs(Callback):
        def __init__(self):
            self.n = 0

        def before_epoch(self):
            self.n += 1

    epochs = Epochs()
    learn = Learner(make_dls(fmnist, n_train=256), simple_cnn(1, 10, (4,)), cbs=epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as fastai: nothing to freeze, both phases run, no warning
        learn.fine_tune(1)
    assert epochs.n == 2  # the frozen phase's epoch and the unfrozen one, as fastai's fine_tune(1)
    assert len(learn.recorder.values) == 1  # the recorder keeps the rows of the last fit
    assert all(p.requires_grad for p in learn.model.parameters())


def test_checkpoint_resume_continues_schedule(fmnist, tmp_path):
    def run(stop_after=None):
        pipekit.set_seed(0)
        learn = make_learner(make_dls(fmnist, n_train=1024), channels=(4, 8), path=tmp_path)

        class Interrupt(Callback):
            def after_epoch(self):
                if stop_after is not None and self.learn.epoch == stop_after:
                    self.learn.save("ckpt")
                    raise CancelFitException()

        learn.fit_one_cycle(4, 1e-2, cbs=[Interrupt()])
        return learn

    full = run()
    run(stop_after=1)
    pipekit.set_seed(123)  # a fresh process would start from another RNG state
    resumed = make_learner(make_dls(fmnist, n_train=1024), channels=(4, 8), path=tmp_path)
    resumed.load("ckpt")
    assert resumed.resume_epoch == 2
    resumed.fit_one_cycle(4, 1e-2, start_epoch=resumed.resume_epoch)
    n = len(resumed.recorder.lrs)
    assert n == len(full.recorder.lrs) // 2
    np.testing.assert_allclose(resumed.recorder.lrs, full.recorder.lrs[-n:])
    assert [r[0] for r in resumed.recorder.history] == [2, 3]
    for a, b in zip(resumed.model.state_dict().values(), full.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_cancel_exceptions_and_events(fmnist):
    events = []

    class Probe(Callback):
        def before_fit(self):
            events.append("before_fit")

        def before_batch(self):
            if self.learn.training and self.learn.iter == 1:
                raise CancelBatchException()

        def after_cancel_batch(self):
            events.append("cancel_batch")

        def after_step(self):
            events.append("step")

        def after_fit(self):
            events.append("after_fit")

    learn = make_learner(make_dls(fmnist, n_train=256, bs=64), channels=(4,))
    learn.fit(1, 1e-3, cbs=[Probe()])
    assert events[0] == "before_fit" and events[-1] == "after_fit"
    assert events.count("cancel_batch") == 1 and events.count("step") == 3  # 4 batches, one cancelled


def test_bad_arguments_are_named(fmnist):
    dls = make_dls(fmnist, n_train=256)
    with pytest.raises(ValueError, match="lr"):
        Learner(dls, simple_cnn(1, 10, (4,)), lr=-1)
    with pytest.raises(TypeError, match="nn.Module"):
        Learner(dls, "resnet")
    learn = Learner(dls, simple_cnn(1, 10, (4,)))
    with pytest.raises(ValueError, match="n_epoch"):
        learn.fit(0)
    with pytest.raises(ValueError, match="3 learning rates for 1"):
        learn.fit(1, lr=[1e-3, 1e-3, 1e-3])
    with pytest.raises(ValueError, match=r"left 4 model parameters out of every group"):
        Learner(dls, simple_cnn(1, 10, (4,)), splitter=lambda m: [list(m[0].parameters())[:1]]).fit(1)
    with pytest.raises(ValueError, match=r"freeze_to: n=3 is not accepted; expected an integer in \[-1, 1\]"):
        learn.freeze_to(3)
    # the schedules' learning rates are named as fit's is (a text was numpy's 'could not convert string to float')
    for fit, arg, bad in ((learn.fit_one_cycle, "lr_max", "a"), (learn.fit_one_cycle, "lr_max", slice("a", 1e-2)),
                          (learn.fit_flat_cos, "lr", -1.0), (learn.fit_sgdr, "lr_max", float("nan"))):
        with pytest.raises(ParameterError, match=rf"{fit.__name__}: {arg}=.* is not accepted; expected a positive "
                                                 "finite number, a slice of them, a list or None"):
            fit(*((1, 1) if fit == learn.fit_sgdr else (1,)), **{arg: bad})
    assert learn.recorder.values == []  # nothing trained
    # metrics are checked when the Learner is built, not after the first epoch
    with pytest.raises(ParameterError, match=r"metrics='accuracy' is a str: pass the metric itself \(accuracy, from"):
        Learner(dls, simple_cnn(1, 10, (4,)), metrics=["accuracy"])
    with pytest.raises(ParameterError, match="a metric must be a pipekit Metric or a function"):
        Learner(dls, simple_cnn(1, 10, (4,)), metrics=[3])
    with pytest.raises(ParameterError, match=r"FuncMetric: fn=.* expected a function of the predictions and the targets"):
        Learner(dls, simple_cnn(1, 10, (4,)), metrics=[lambda pred: pred.mean()])
    with pytest.raises(ValueError, match="loss_func"):
        Learner(DataLoaders.from_stores([TensorStore(np.zeros((8, 2), np.float32))] * 2,
                                        [TensorStore(np.zeros((8, 2), np.float32))] * 2, bs=4), nn.Linear(2, 2))


def test_non_finite_loss_is_reported(fmnist):
    x_tr, y_tr, x_va, y_va = fmnist
    x = (x_tr[:256, None].astype(np.float32) / 255.0).copy()
    x[3] = np.nan  # one corrupt image
    dls = DataLoaders.from_stores([TensorStore(x), TensorStore(y_tr[:256].astype(np.int64))],
                                  [TensorStore(x[:64]), TensorStore(y_tr[:64].astype(np.int64))],
                                  blocks=(CategoryBlock(), CategoryBlock()), bs=64, seed=0, device="cpu",
                                  num_workers=0)
    with pytest.raises(NonFiniteError, match=r"epoch 0, batch \d+: the training loss was NaN/inf"):
        Learner(dls, simple_cnn(1, 10, (4,))).fit(1, 1e-3)  # stopped by default
    learn = Learner(dls, simple_cnn(1, 10, (4,)), terminate_on_nan=False)
    with pytest.warns(RuntimeWarning, match="not finite"):
        learn.fit(1, 1e-3)


def test_a_cancelled_epoch_keeps_its_own_train_loss_and_mixup_its_loss(fmnist):
    from pipekit.learn import CancelEpochException, MixUp

    class CancelEpoch0(Callback):  # the rest of epoch 0 is skipped after 2 of its 4 batches
        def before_batch(self):
            if self.learn.training and self.learn.epoch == 0 and self.learn.iter == 2:
                raise CancelEpochException()

    class Losses(Callback):  # each training batch's loss, per epoch
        order = 100

        def before_fit(self):
            self.per_epoch = {}

        def after_batch(self):
            if self.learn.training:
                self.per_epoch.setdefault(self.learn.epoch, []).append(float(self.learn.loss))

    dls = make_dls(fmnist, n_train=256, bs=64)
    loss = CrossEntropyLossFlat()
    for extra in ([], [MixUp()]):
        learn = make_learner(dls, channels=(4,), loss_func=loss)
        seen = Losses()
        learn.fit(2, 1e-3, cbs=[CancelEpoch0(), seen, *extra])
        rows = learn.recorder.history
        assert [len(seen.per_epoch[e]) for e in (0, 1)] == [2, 4]
        for e in (0, 1):  # every batch holds 64 items: the epoch's loss is the mean of its batches'
            assert rows[e][1] == pytest.approx(np.mean(seen.per_epoch[e]), rel=1e-6)
        assert rows[0][2] is None and rows[1][2] is not None  # epoch 0 was not validated, epoch 1 was
        assert learn.loss_func is loss and len(learn.recorder.losses) == 6
