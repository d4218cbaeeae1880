"""Chapter 4's hand-written optimiser given to a Learner as opt_func: a ParameterError says what a Learner needs
of the optimiser and what to pass instead, on mnist_tiny's 3s and 7s as the chapter stacks them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import DataLoaders
from pipekit.learn import SGD, Learner


class BasicOptim:
    """The book's own optimiser (chapter 4): ``step`` and ``zero_grad``, no ``param_groups``."""

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self, *args, **kwargs):
        for p in self.params:
            p.data -= p.grad.data * self.lr

    def zero_grad(self, *args, **kwargs):
        for p in self.params:
            p.grad = None


def mnist_loss(predictions, targets):
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def batch_accuracy(xb, yb):
    return ((xb.sigmoid() > 0.5) == yb).float().mean()


def threes_sevens(split):
    xs, ys = [], []
    for label, digit in ((1, "3"), (0, "7")):
        for f in sorted((D.path("mnist_tiny") / split / digit).glob("*.png")):
            xs.append(torch.tensor(np.asarray(Image.open(f)), dtype=torch.float32).view(-1) / 255)
            ys.append(label)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.float32).unsqueeze(1)


@pytest.fixture(scope="module")
def dls():
    torch.set_num_threads(1)
    (tx, ty), (vx, vy) = threes_sevens("train"), threes_sevens("valid")
    assert len(tx) > 100 and len(vx) > 100
    dl = torch.utils.data.DataLoader(list(zip(tx, ty)), batch_size=64, shuffle=True)
    valid_dl = torch.utils.data.DataLoader(list(zip(vx, vy)), batch_size=64)
    return DataLoaders(dl, valid_dl, device="cpu")


def test_basic_optim_as_opt_func_names_what_it_lacks_and_the_fix(dls):
    learn = Learner(dls, nn.Linear(28 * 28, 1), opt_func=BasicOptim, loss_func=mnist_loss)
    before = learn.model.weight.detach().clone()
    with pytest.raises(ParameterError) as err:
        learn.fit(1, lr=1.0)
    msg = str(err.value)
    assert "opt_func=BasicOptim built a BasicOptim, which has no param_groups" in msg
    assert "torch.optim.Optimizer" in msg and "partial(OptimWrapper, opt=torch.optim.SGD)" in msg
    assert "opt_func=SGD" in msg and "keep BasicOptim for a training loop written by hand" in msg
    # refused where the optimiser is built, before any step
    torch.testing.assert_close(learn.model.weight, before)
    with pytest.raises(ParameterError, match="opt_func=BasicOptim built a BasicOptim"):
        learn.create_opt()


def test_basic_optim_still_trains_in_a_hand_written_loop(dls):
    pipekit.set_seed(0)
    model = nn.Linear(28 * 28, 1)
    opt = BasicOptim(model.parameters(), lr=1.0)
    for _ in range(3):
        for xb, yb in dls.train:
            mnist_loss(model(xb), yb).backward()
            opt.step()
            opt.zero_grad()
    vx, vy = threes_sevens("valid")
    with torch.no_grad():
        assert float(batch_accuracy(model(vx), vy)) > 0.9


def test_the_books_sgd_trains_on_the_same_data(dls):
    pipekit.set_seed(0)
    learn = Learner(dls, nn.Linear(28 * 28, 1), opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy)
    learn.fit(5, lr=1.0)
    vx, vy = threes_sevens("valid")
    with torch.no_grad():
        hand = float(batch_accuracy(learn.model(vx), vy))
    assert learn.recorder.value("batch_accuracy") == pytest.approx(hand, abs=1e-6) and hand > 0.9


def test_torch_and_wrapped_torch_optimisers_are_still_taken(dls):
    for opt_func in (torch.optim.SGD, SGD):
        learn = Learner(dls, nn.Linear(28 * 28, 1), opt_func=opt_func, loss_func=mnist_loss)
        assert learn.create_opt().param_groups[0]["lr"] == pytest.approx(1e-3)
