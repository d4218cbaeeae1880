"""fastai spellings readers of chapters 13-19 write, on Fashion-MNIST: a callback changing the loss (``loss_grad``
trains, ``loss`` is only recorded), ``partial(OptimWrapper, opt=...)`` as ``opt_func``, one callback or a list in
``added_cbs``/``removed_cbs``/``add_cbs``/``remove_cbs``, and ``no_bar``/``no_logging``."""
from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import DataLoaders, TensorStore
from pipekit.data.external import read_idx
from pipekit.learn import Callback, CrossEntropyLossFlat, Learner, OptimWrapper, ProgressCallback, simple_cnn


@pytest.fixture(scope="module")
def arrays():
    torch.set_num_threads(1)
    root = D.path("fashion_mnist")
    x = read_idx(root / "train-images-idx3-ubyte.gz")[:384, None].astype(np.float32) / 255.0
    y = read_idx(root / "train-labels-idx1-ubyte.gz")[:384].astype(np.int64)
    return x, y


@pytest.fixture
def dls(arrays):
    x, y = arrays
    return fresh(x, y)


def fresh(x, y):
    """Loaders at epoch 0 (a fit advances its loaders' epochs, hence their shuffles)."""
    return DataLoaders.from_stores([TensorStore(x[:256]), TensorStore(y[:256])],
                                   [TensorStore(x[256:]), TensorStore(y[256:])], bs=64, seed=0, device="cpu",
                                   num_workers=0)


def learner(dls, **kw):
    pipekit.set_seed(0)
    return Learner(dls, simple_cnn(1, 10, (8, 16)), loss_func=CrossEntropyLossFlat(), **kw)


def _weights(learn):
    return torch.cat([p.detach().flatten().clone() for p in learn.model.parameters()])


class ZeroLoss(Callback):
    def after_loss(self):
        self.learn.loss = self.loss * 0


class ZeroLossGrad(Callback):
    def after_loss(self):
        self.learn.loss_grad = self.learn.loss_grad * 0


def test_a_callback_changes_training_through_loss_grad_and_is_warned_when_it_changes_loss_alone(dls):
    learn = learner(dls, cbs=ZeroLossGrad(), wd=0.0)
    before = _weights(learn)
    learn.fit(1, 1e-2)
    assert torch.equal(before, _weights(learn))  # a zero loss_grad: nothing learned
    assert learn.recorder.values[-1][0] > 1.0  # the record keeps the real loss (ln 10 at the start)

    learn = learner(dls, cbs=ZeroLoss(), wd=0.0)
    before = _weights(learn)
    with pytest.warns(UserWarning, match=r"changed learn.loss in after_loss but not learn.loss_grad.*"
                                         r"self.learn.loss_grad = self.learn.loss_grad \+ penalty") as caught:
        learn.fit(1, 1e-2)
    assert sum("learn.loss_grad" in str(w.message) for w in caught) == 1  # once, not once per batch
    assert not torch.equal(before, _weights(learn))  # training went on
    assert learn.recorder.values[-1][0] == 0.0  # the record says what the callback set

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain fit warns of nothing
        learner(dls).fit(1, 1e-3)


class PenaltyInPlace(Callback):
    """The book's spelling (chapter 12): an in-place penalty on learn.loss."""
    def after_loss(self):
        self.learn.loss += 10 * self.learn.pred.pow(2).mean()


class PenaltyInPlaceGrad(Callback):
    def after_loss(self):
        self.learn.loss_grad += 10 * self.learn.pred.pow(2).mean()


def test_an_in_place_change_of_loss_alone_is_warned_and_one_of_loss_grad_trains(arrays):
    plain = learner(fresh(*arrays), wd=0.0)
    plain.fit(1, 1e-2)
    learn = learner(fresh(*arrays), cbs=PenaltyInPlace(), wd=0.0)
    with pytest.warns(UserWarning, match=r"changed learn.loss in after_loss but not learn.loss_grad") as caught:
        learn.fit(1, 1e-2)
    assert sum("learn.loss_grad" in str(w.message) for w in caught) == 1
    assert torch.equal(_weights(learn), _weights(plain))  # the penalty did not train, hence the warning
    assert learn.recorder.values[-1][0] > plain.recorder.values[-1][0]  # it changed the record

    learn = learner(fresh(*arrays), cbs=PenaltyInPlaceGrad(), wd=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an in-place penalty on loss_grad trains: nothing to warn of
        learn.fit(1, 1e-2)
    assert not torch.equal(_weights(learn), _weights(plain))


def test_partial_optimwrapper_with_a_torch_optimiser_trains_as_that_optimiser(arrays):
    direct = learner(fresh(*arrays), opt_func=partial(torch.optim.SGD, momentum=0.9), wd=0.0)
    direct.fit(1, 1e-2)
    for spelling in (partial(OptimWrapper, opt=torch.optim.SGD, momentum=0.9),
                     partial(OptimWrapper, opt_func=torch.optim.SGD, momentum=0.9, convert_groups=True)):
        learn = learner(fresh(*arrays), opt_func=spelling, wd=0.0)
        learn.fit(1, 1e-2)
        assert isinstance(learn.opt.opt, torch.optim.SGD)
        assert learn.opt.opt.param_groups[0]["momentum"] == pytest.approx(direct.opt.opt.param_groups[0]["momentum"])
        assert torch.allclose(_weights(learn), _weights(direct))  # the same steps as opt_func=SGD


@pytest.mark.parametrize("spelling", [OptimWrapper, partial(OptimWrapper), partial(OptimWrapper, torch.optim.SGD),
                                      partial(OptimWrapper, opt=torch.optim.SGD, hp_map={"lr": "lr"}),
                                      partial(OptimWrapper, opt=partial(OptimWrapper, opt=torch.optim.SGD))])
def test_optimwrapper_spellings_that_cannot_work_are_refused_showing_the_one_that_does(dls, spelling):
    with pytest.raises(ParameterError, match=r"opt_func=partial\(OptimWrapper, opt=torch.optim.SGD\)"):
        learner(dls, opt_func=spelling)


class Counter(Callback):
    def before_fit(self):
        self.batches_ = 0

    def after_batch(self):
        self.batches_ += 1


def test_one_callback_or_a_list_in_added_removed_add_and_remove_cbs(dls):
    cb, other = Counter(), Counter()
    learn = learner(dls, cbs=cb)
    with learn.removed_cbs(cb):  # one callback, as fastai takes it
        assert cb not in learn.cbs
        learn.fit(1, 1e-3)
    assert cb in learn.cbs and not hasattr(cb, "batches_")  # switched off during the fit, back after it
    with learn.removed_cbs(Counter):  # a class: every callback of it
        assert not any(isinstance(c, Counter) for c in learn.cbs)
    assert cb in learn.cbs
    with learn.added_cbs(other):
        learn.fit(1, 1e-3)
    assert other.batches_ == len(dls.train) + len(dls.valid) and other not in learn.cbs
    learn.remove_cbs(cb)
    assert cb not in learn.cbs
    learn.add_cbs(cb)
    assert cb in learn.cbs
    learn.remove_cbs([cb])
    assert cb not in learn.cbs


class SeesBar(Callback):
    order = 61  # after the ProgressCallback set (or did not set) the bar

    def before_fit(self):
        self.bar_ = self.learn.batch_wrapper is not None


def test_no_bar_and_no_logging_switch_off_the_bar_and_the_table_for_the_block(dls, monkeypatch, capsys):
    monkeypatch.delenv("PIPEKIT_QUIET", raising=False)
    seen = SeesBar()
    learn = learner(dls, cbs=seen)
    learn.fit(1, 1e-3)
    assert seen.bar_ and "train_loss" in capsys.readouterr().out
    with learn.no_bar():
        learn.fit(1, 1e-3)
    assert not seen.bar_ and "train_loss" in capsys.readouterr().out  # the table still prints
    with learn.no_logging():
        learn.fit(1, 1e-3)
    assert seen.bar_ and capsys.readouterr().out == ""
    assert len(learn.recorder.values) == 1  # still recorded
    learn.fit(1, 1e-3)  # both back after the blocks
    assert seen.bar_ and "train_loss" in capsys.readouterr().out


def test_lr_find_shows_the_progress_bar_without_the_table_and_no_bar_hides_it(dls, monkeypatch, capsys):
    monkeypatch.delenv("PIPEKIT_QUIET", raising=False)
    seen = SeesBar()
    learn = learner(dls, cbs=seen)
    learn.lr_find(num_it=5, show_plot=False)
    assert seen.bar_ and "train_loss" not in capsys.readouterr().out  # a bar over the sweep, as fastai's; no table
    with learn.no_bar():
        learn.lr_find(num_it=5, show_plot=False)
    assert not seen.bar_
    assert sum(isinstance(c, ProgressCallback) for c in learn.cbs) == 1  # the learner's own, as it was
