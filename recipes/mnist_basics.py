"""mnist_basics: the book's chapter 4, telling 3s from 7s from scratch, four ways on the same digits.

On mnist_tiny's 709 training and 699 validation digits (28x28, grey), each model scored on the validation set:

1. pixel similarity, no training: the mean 3 and the mean 7 of the training digits; a digit is the one whose
   mean it is closer to (mean absolute pixel difference). Accuracy 0.9657 (3s 0.9335, 7s 0.9972).
2. a linear model (784 weights and a bias) trained by hand: plain tensors, ``requires_grad_``, the book's
   ``mnist_loss`` (sigmoid, then the distance to the target), ``loss.backward()`` and ``p -= lr * p.grad`` in
   mini-batches of 64, 20 epochs at lr 1 from weights drawn from a standard normal: 0.9685.
3. the same linear model through pipekit: ``DataLoaders.from_dsets(list(zip(x, y)), ...)`` and
   ``Learner(dls, nn.Linear(784, 1), opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy)``, 10 epochs
   at lr 1: 0.9900.
4. a two-layer net (784 -> 30 -> ReLU -> 1) through the same Learner, 40 epochs at lr 0.1: 0.9914.

The full run took 4.4 s on 2 CPU cores (10 s with Python's start). On digits this easy the pixel-similarity
baseline is already above 0.96 (24 of 699 wrong). The hand-trained model, from standard-normal weights, barely
passes it (22 wrong); the same model through the Learner, from ``nn.Linear``'s own (smaller) initial weights,
gets 7 wrong, and the hidden layer 6.

    pipekit run mnist_basics            # full run
    pipekit run mnist_basics --quick    # fewer epochs, for tests
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from pipekit.cli import positive_int, recipe_parser
import pipekit.datasets as D
from pipekit.data import DataLoaders, get_image_files, set_seed
from pipekit.learn import SGD, Learner
from pipekit.vision import decode_image

SEED = 42


def stack_digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3s then the 7s of ``split`` as a float tensor ``[n, 28, 28]`` in 0..1 and targets ``[n, 1]``
    (1 for a 3, 0 for a 7), as the book builds them."""
    root = D.path("mnist_tiny") / split
    xs, ys = [], []
    for digit, target in (("3", 1), ("7", 0)):
        files = sorted(get_image_files(root / digit))
        xs += [torch.from_numpy(decode_image(f, mode="L")[..., 0]).float() / 255 for f in files]
        ys += [target] * len(files)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.float32).unsqueeze(1)


def load() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    return stack_digits("train"), stack_digits("valid")


def dataloaders(data=None, bs: int = 64) -> DataLoaders:
    """The digits flattened to 784 pixels, as ``(x, y)`` pairs in DataLoaders (``pipekit summary mnist_basics``)."""
    (tx, ty), (vx, vy) = data or load()
    return DataLoaders.from_dsets(list(zip(tx.view(-1, 28 * 28), ty)), list(zip(vx.view(-1, 28 * 28), vy)), bs=bs,
                                  seed=SEED)


def mnist_loss(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The book's loss: how far the sigmoid of each prediction is from its target (1 for a 3, 0 for a 7)."""
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def batch_accuracy(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return ((preds.sigmoid() > 0.5).float() == targets).float().mean()


def pixel_similarity(data) -> dict[str, float]:
    """Accuracy of 'closer to the mean 3 than to the mean 7', on the 3s, the 7s and all validation digits."""
    (tx, ty), (vx, vy) = data
    mean3, mean7 = tx[ty[:, 0] == 1].mean(0), tx[ty[:, 0] == 0].mean(0)

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().mean((-1, -2))  # broadcasting: one distance per digit

    is_3 = (distance(vx, mean3) < distance(vx, mean7)).float()
    right = is_3 == vy[:, 0]
    threes = vy[:, 0] == 1
    return {"3s": float(right[threes].float().mean()), "7s": float(right[~threes].float().mean()),
            "all": float(right.float().mean())}


def linear_by_hand(data, epochs: int, lr: float = 1.0, bs: int = 64) -> float:
    """A linear model trained with plain tensors: the gradient from ``backward()``, the step written out."""
    (tx, ty), (vx, vy) = data
    tx, vx = tx.view(-1, 28 * 28), vx.view(-1, 28 * 28)
    gen = torch.Generator().manual_seed(SEED)
    weights = (torch.randn(28 * 28, 1, generator=gen)).requires_grad_()
    bias = torch.randn(1, generator=gen).requires_grad_()
    for _ in range(epochs):
        for idx in torch.randperm(len(tx), generator=gen).split(bs):
            loss = mnist_loss(tx[idx] @ weights + bias, ty[idx])
            loss.backward()
            with torch.no_grad():
                for p in (weights, bias):
                    p -= lr * p.grad
                    p.grad.zero_()
    with torch.no_grad():
        return float(batch_accuracy(vx @ weights + bias, vy))


def with_learner(data, model: nn.Module, epochs: int, lr: float) -> float:
    dls = dataloaders(data)
    learn = Learner(dls, model, opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy)
    learn.fit(epochs, lr=lr)
    return float(learn.recorder.values[-1][2])  # train_loss, valid_loss, then the metric, as the book reads it


def main(quick: bool = False) -> dict:
    t0 = time.perf_counter()
    data = load()
    sim = pixel_similarity(data)
    set_seed(SEED)
    by_hand = linear_by_hand(data, epochs=5 if quick else 20)
    set_seed(SEED)
    linear = with_learner(data, nn.Linear(28 * 28, 1), epochs=3 if quick else 10, lr=1.0)
    set_seed(SEED)
    net = with_learner(data, nn.Sequential(nn.Linear(28 * 28, 30), nn.ReLU(), nn.Linear(30, 1)),
                       epochs=10 if quick else 40, lr=0.1)
    elapsed = time.perf_counter() - t0
    print(f"result: mnist_basics 3-vs-7 ({len(data[0][0])} train / {len(data[1][0])} valid digits) "
          f"pixel_similarity={sim['all']:.4f} (3s {sim['3s']:.4f}, 7s {sim['7s']:.4f}) "
          f"linear_by_hand={by_hand:.4f} linear_learner={linear:.4f} two_layer_learner={net:.4f} "
          f"time={elapsed:.1f}s")
    return {"pixel_similarity": sim, "linear_by_hand": by_hand, "linear_learner": linear,
            "two_layer_learner": net, "time_s": elapsed}


if __name__ == "__main__":
    p = recipe_parser(__file__, __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer epochs (for tests): 5, 3 and 10 instead of 20, 10 "
                                                       "and 40 for the three trained models")
    # one thread: a 784 x 30 model is too small to share between cores
    p.add_argument("--threads", type=positive_int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    main(a.quick)
