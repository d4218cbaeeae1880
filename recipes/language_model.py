"""language_model: the book's chapter 12, a language model from scratch on Human Numbers.

The corpus is the English words for 1 to 9,999 ("one . two . three . ... nine thousand nine hundred ninety
nine"), 63,098 tokens over a vocabulary of 30 words. It is a fixed list, so the recipe writes it itself
(``number_words``) instead of reading a file. As in the book, the first 80% of the token stream trains and
the last 20% (the numbers from about 8,000 up) validates: a model must carry what it learned about "seven
thousand ..." to "eight thousand ...". Every model is a plain ``nn.Module`` trained by pipekit's ``Learner`` on
``DataLoaders.from_dsets`` built from ``(x, y)`` pairs; each line is the validation accuracy of predicting the
next word from the full run (34 s on 2 CPU cores, one torch thread):

- the most common word of the validation text every time, for scale: 0.152 ("." and "thousand" tie: one
  of each per number)
- 3 words in, the 4th out, one hidden layer shared over the 3 steps (4 epochs): 0.382 (from one epoch to
  the next it moved between 0.35 and 0.45)
- the same RNN over 3-word windows keeping its hidden state from batch to batch (the batches arranged so row
  r of a batch continues row r of the one before; ``ModelResetter`` clears the state before training and
  validation), 10 epochs: 0.595
- the same keeping its state and predicting after every word of 16-word windows (multi-output), 15 epochs:
  0.609
- a 2-layer LSTM (64 hidden) in the same set-up, 15 epochs: 0.799
- the LSTM regularised: dropout 0.5 on its output, input and output embedding tied, activation (AR, alpha=2)
  and temporal activation (TAR, beta=1) regularisation through ``TextLearner``, weight decay 0.1, 15 epochs:
  0.845

    pipekit run language_model            # full run
    pipekit run language_model --quick    # fewer epochs, for tests
"""
from __future__ import annotations

import argparse
import time
from collections import Counter

import torch
from torch import nn

from pipekit.cli import positive_int, recipe_parser
from pipekit.data import DataLoaders, set_seed
from pipekit.learn import CrossEntropyLossFlat, Learner, accuracy
from pipekit.text import ModelResetter, TextLearner

SEED = 42
BS = 64
ONES = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    """``n`` (1..9,999) in English words as the Human Numbers corpus writes them: no "and", no hyphens.

    >>> number_words(7), number_words(42), number_words(9015)
    ('seven', 'forty two', 'nine thousand fifteen')
    """
    if not 1 <= n <= 9999:
        raise ValueError(f"number_words: {n} is outside the corpus's 1..9999")
    words = []
    if n >= 1000:
        words += [ONES[n // 1000], "thousand"]
    if n % 1000 >= 100:
        words += [ONES[n % 1000 // 100], "hundred"]
    rest = n % 100
    if rest >= 20:
        words += [TENS[rest // 10]] + ([ONES[rest % 10]] if rest % 10 else [])
    elif rest:
        words.append(ONES[rest])
    return " ".join(words)


def corpus() -> tuple[torch.Tensor, list[str]]:
    """The token stream (numbers joined by " . ") as ids, and the vocabulary in order of first appearance."""
    tokens = " . ".join(number_words(n) for n in range(1, 10_000)).split()
    vocab = list(dict.fromkeys(tokens))
    index = {w: i for i, w in enumerate(vocab)}
    return torch.tensor([index[w] for w in tokens]), vocab


def in_step(seqs: list[tuple[torch.Tensor, torch.Tensor]], bs: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Reorder ``seqs`` so that, read in batches of ``bs``, row r of each batch continues row r of the batch
    before: the stream is cut into ``bs`` contiguous parts and batch i takes the i-th window of each part."""
    m = len(seqs) // bs
    return [seqs[i + m * j] for i in range(m) for j in range(bs)]


def windows(nums: torch.Tensor, sl: int, multi: bool, bs: int = BS, stateful: bool = True) -> DataLoaders:
    """``sl`` tokens in, the next token out (or, ``multi``, the next token after every one of them), the first
    80% of windows training and the rest validating."""
    n = (len(nums) - 1) // sl
    x = nums[:n * sl].view(n, sl)
    y = nums[1:n * sl + 1].view(n, sl) if multi else nums[sl:n * sl + 1:sl]
    seqs = list(zip(x, y))
    cut = int(n * 0.8)
    if not stateful:
        return DataLoaders.from_dsets(seqs[:cut], seqs[cut:], bs=bs, seed=SEED)
    # a kept hidden state needs the windows in step and every batch full
    return DataLoaders.from_dsets(in_step(seqs[:cut], bs), in_step(seqs[cut:], bs), bs=bs, shuffle=False,
                                  drop_last=True, seed=SEED)


def dataloaders() -> DataLoaders:
    """The multi-output windows of 16 words (``pipekit summary language_model``)."""
    return windows(corpus()[0], 16, multi=True)


class ThreeWords(nn.Module):
    """Three word embeddings through one shared hidden layer, the fourth word out."""

    def __init__(self, vocab_sz: int, n_hidden: int):
        super().__init__()
        self.i_h, self.h_h, self.h_o = nn.Embedding(vocab_sz, n_hidden), nn.Linear(n_hidden, n_hidden), \
            nn.Linear(n_hidden, vocab_sz)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], self.h_h.in_features, device=x.device)
        for i in range(x.shape[1]):
            h = torch.relu(self.h_h(h + self.i_h(x[:, i])))
        return self.h_o(h)


class KeptStateRNN(nn.Module):
    """The same loop, its hidden state carried from one batch to the next (detached: back-propagation goes
    through this batch's steps only). ``multi``: a prediction after every word, not only the last."""

    def __init__(self, vocab_sz: int, n_hidden: int, multi: bool):
        super().__init__()
        self.i_h, self.h_h, self.h_o = nn.Embedding(vocab_sz, n_hidden), nn.Linear(n_hidden, n_hidden), \
            nn.Linear(n_hidden, vocab_sz)
        self.multi = multi
        self.h: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.h if self.h is not None else torch.zeros(x.shape[0], self.h_h.in_features, device=x.device)
        outs = []
        for i in range(x.shape[1]):
            h = torch.relu(self.h_h(h + self.i_h(x[:, i])))
            outs.append(self.h_o(h))
        self.h = h.detach()
        return torch.stack(outs, dim=1) if self.multi else outs[-1]

    def reset(self) -> None:  # called by ModelResetter
        self.h = None


class KeptStateLSTM(nn.Module):
    """A multi-layer LSTM keeping its state across batches. ``p > 0``: dropout on its output and the input
    and output embeddings tied; it then returns ``(logits, raw, dropped)`` for AR and TAR (``TextLearner``)."""

    def __init__(self, vocab_sz: int, n_hidden: int, n_layers: int, p: float = 0.0):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.rnn = nn.LSTM(n_hidden, n_hidden, n_layers, batch_first=True)
        self.drop = nn.Dropout(p) if p else None
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        if p:
            self.h_o.weight = self.i_h.weight
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor):
        raw, state = self.rnn(self.i_h(x), self.state)
        self.state = (state[0].detach(), state[1].detach())
        if self.drop is None:
            return self.h_o(raw)
        out = self.drop(raw)
        return self.h_o(out), raw, out

    def reset(self) -> None:  # called by ModelResetter
        self.state = None


def fit(learn: Learner, epochs: int, lr: float, **kw) -> float:
    learn.fit_one_cycle(epochs, lr, **kw)
    return float(learn.recorder.values[-1][2])


def main(quick: bool = False) -> dict:
    t0 = time.perf_counter()
    nums, vocab = corpus()
    v = len(vocab)
    cut = int((len(nums) - 1) // 16 * 0.8) * 16
    common, count = Counter(nums[cut:].tolist()).most_common(1)[0]
    acc = {"most_common_word": count / (len(nums) - cut)}

    def epochs(n: int) -> int:
        return max(1, n // 5) if quick else n

    set_seed(SEED)
    learn = Learner(windows(nums, 3, multi=False, stateful=False), ThreeWords(v, 64), loss_func=CrossEntropyLossFlat(),
                    metrics=accuracy)
    acc["3_words"] = fit(learn, epochs(4), 1e-3)
    set_seed(SEED)
    learn = Learner(windows(nums, 3, multi=False), KeptStateRNN(v, 64, multi=False),
                    loss_func=CrossEntropyLossFlat(), metrics=accuracy, cbs=ModelResetter())
    acc["rnn_kept_state"] = fit(learn, epochs(10), 3e-3)
    set_seed(SEED)
    multi = windows(nums, 16, multi=True)
    learn = Learner(multi, KeptStateRNN(v, 64, multi=True), loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                    cbs=ModelResetter())
    acc["rnn_multi_output"] = fit(learn, epochs(15), 3e-3)
    set_seed(SEED)
    learn = Learner(multi, KeptStateLSTM(v, 64, 2), loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                    cbs=ModelResetter())
    acc["lstm"] = fit(learn, epochs(15), 1e-2)
    set_seed(SEED)
    learn = TextLearner(multi, KeptStateLSTM(v, 64, 2, p=0.5), alpha=2, beta=1, loss_func=CrossEntropyLossFlat(),
                        metrics=accuracy)
    acc["lstm_regularised"] = fit(learn, epochs(15), 1e-2, wd=0.1)
    elapsed = time.perf_counter() - t0
    figures = " ".join(f"{name}={a:.4f}" for name, a in acc.items())
    print(f"result: language_model human numbers ({len(nums)} tokens, vocab {v}, "
          f"{'quick: a fifth of the epochs' if quick else 'full epochs'}) valid accuracy {figures} "
          f"time={elapsed:.1f}s")
    return {"accuracy": acc, "most_common": vocab[common], "time_s": elapsed}


if __name__ == "__main__":
    ap = recipe_parser(__file__, __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a fifth of the epochs (at least 1) of each model, "
                                                        "for tests")
    # one thread: these matrices (64 hidden units, batches of 64) are too small to share between cores, and
    # on a busy 2-core machine two threads made each batch several times slower
    ap.add_argument("--threads", type=positive_int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    main(a.quick)
