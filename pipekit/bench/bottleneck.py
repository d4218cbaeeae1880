"""``bottleneck()``: is it the loader or the model that holds training back, and by how much.

Three throughputs are measured the same way, through the Learner's own training loop (its callbacks, its
device transfer, its optimiser), after the same warm-up batches:

* **loader**: the real loader, each batch handed to the loop and cancelled before the forward pass;
* **model**: the same batches, loaded once beforehand and fed again (up to ``MODEL_BATCHES`` of them,
  cycled): the model's speed with loading free, on batches like those the other phases time;
* **full**: the real training step on the real loader.

With ``rounds`` > 1 the three phases run that many times, in alternating order, and each figure is the
median of its rounds, so a burst of load on a shared machine does not decide the verdict alone. A full
step measured faster than the slower of loader and model is impossible: the verdict then says that the
figures disagree.

This is the "IO / synthetic / full" method of the SC21 study of DL input pipelines: if the full step
runs at the loader's speed the input pipeline is the limit; at the model's speed, compute is; below both,
the two compete for the same cores.
"""
from __future__ import annotations

import copy
import itertools
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from pipekit.bench.profile import machine
from pipekit.bench.runner import as_runner, count_items, no_batches
from pipekit.core.errors import ParameterError
from pipekit.core.validate import Interval, check
from pipekit.data.seed import kept_random_states
from pipekit.learn.callbacks import Callback, CancelBatchException, CancelValidException
from pipekit.learn.schedule import NOT_TRAINING

#: ratios within this margin of 1 call the loader and the model balanced
MARGIN = 0.10
#: a full step below this share of the slower of loader and model means they compete for resources
CONTENTION = 0.80
#: distinct batches the model phase is fed (cycled), kept in memory beside the model
MODEL_BATCHES = 8


@dataclass
class Bottleneck:
    """Items/s of the loader alone, the model alone (up to ``MODEL_BATCHES`` cached batches in turn) and the real
    training step.

    >>> from pipekit.bench import Bottleneck
    >>> b = Bottleneck(loader_items_s=2000.0, model_items_s=8000.0, full_items_s=1900.0, n_batches=20, bs=64,
    ...                device="cpu")
    >>> b.limiter, round(b.overlap, 2), b.contention, b.consistent
    ('loader', 0.95, False, True)
    >>> print(b.verdict)
    the loader limits training: it delivers 2,000 items/s, the model alone trains on 8,000 items/s (4.0x); ...
    """

    loader_items_s: float
    model_items_s: float
    full_items_s: float
    n_batches: int
    bs: int | None
    device: str
    machine_before: dict[str, Any] = field(default_factory=dict)
    rounds: int = 1
    per_round: dict[str, list[float]] = field(default_factory=dict)

    @property
    def limiter(self) -> str:
        """'loader', 'model', or 'balanced' when they are within ``MARGIN`` of each other."""
        r = self.loader_items_s / self.model_items_s
        return "loader" if r < 1 - MARGIN else "model" if r > 1 / (1 - MARGIN) else "balanced"

    @property
    def overlap(self) -> float:
        """The full step's speed as a share of the slower of loader and model (1: they overlap perfectly)."""
        return self.full_items_s / min(self.loader_items_s, self.model_items_s)

    @property
    def contention(self) -> bool:
        return self.overlap < CONTENTION

    @property
    def consistent(self) -> bool:
        """Whether the full step was measured no faster than the slower of loader and model (within ``MARGIN``);
        when it was faster, the machine's load changed between the phases."""
        return self.overlap <= 1 + MARGIN

    @property
    def verdict(self) -> str:
        ld, md, fu = self.loader_items_s, self.model_items_s, self.full_items_s
        if self.limiter == "loader":
            text = (f"the loader limits training: it delivers {ld:,.0f} items/s, the model alone trains on "
                    f"{md:,.0f} items/s ({md / ld:.1f}x); training runs at {fu:,.0f} items/s, and a loader as fast "
                    f"as the model would make it up to {md / fu:.1f}x faster")
        elif self.limiter == "model":
            text = (f"the model limits training: it trains on {md:,.0f} items/s, the loader delivers {ld:,.0f} "
                    f"items/s ({ld / md:.1f}x); training runs at {fu:,.0f} items/s ({fu / md:.0%} of the model's "
                    "speed), so a faster loader would not help")
        else:
            text = (f"loader and model are balanced ({ld:,.0f} vs {md:,.0f} items/s); training runs at "
                    f"{fu:,.0f} items/s")
        if self.contention:
            text += (f"; the real step reaches only {self.overlap:.0%} of the slower of the two: loading and "
                     "training compete for the same cores")
        if not self.consistent:
            text += (f"; but these figures disagree: the training step cannot be {self.overlap:.1f}x faster than the "
                     "slower of its two parts, so the machine's load changed during the measurement"
                     + (": run it again with rounds=3" if self.rounds < 3 else ""))
        return text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(limiter=self.limiter, overlap=self.overlap, contention=self.contention, consistent=self.consistent,
                 verdict=self.verdict)
        return d

    def __repr__(self) -> str:
        return f"Bottleneck({self.verdict})"


class StepTimer(Callback):
    """Feeds the training phase from ``batches`` and times it: cancels each batch before the forward pass
    when ``skip_model``, and the validation phase always. Items after the first ``warmup`` batches count."""

    fit_only = True  # a fit's own: validate and get_preds leave it as the last fit left it
    order = -30  # before every other callback: a cancelled batch is cancelled before anything runs

    def __init__(self, batches: Any = None, warmup: int = 2, skip_model: bool = False, sync: bool = False):
        self.batches, self.warmup, self.skip_model, self.sync = batches, warmup, skip_model, sync

    def _now(self) -> float:
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def before_fit(self) -> None:
        self._t0: float | None = None
        self._t1: float | None = None
        self._items, self._seen = 0, 0

    def before_train(self) -> None:
        self.learn.batch_wrapper = lambda dl: self.batches
        if self.warmup == 0:
            self._t0 = self._now()

    def before_batch(self) -> None:
        if self.skip_model and self.learn.training:
            raise CancelBatchException()

    def after_batch(self) -> None:
        if not self.learn.training:
            return
        self._seen += 1
        if self._seen > self.warmup:
            self._items += count_items(self.learn.xb)
        if self._seen == self.warmup:
            self._t0 = self._now()

    def after_train(self) -> None:
        self._t1 = self._now()
        close = getattr(self.batches, "close", None)
        if close is not None:
            close()

    def before_validate(self) -> None:
        if not self.learn.validation_only:
            raise CancelValidException()

    def after_fit(self) -> None:
        self.learn.batch_wrapper = None

    @property
    def items_per_s(self) -> float:
        if self._t0 is None or self._t1 is None or self._items == 0:
            raise ParameterError("bottleneck: nothing was timed; give n_batches larger than warmup")
        return self._items / (self._t1 - self._t0)


def _stream(runner: Any, n: int) -> Iterator[Any]:
    """``n`` batches of the runner's loader, over as many epochs as it takes."""
    def gen() -> Iterator[Any]:
        for e in itertools.count():
            got = 0
            for b in runner.batches(e):
                got += 1
                yield b
            if got == 0:
                raise ParameterError(no_batches(runner))
    return itertools.islice(gen(), n)


def bottleneck(learn: Any, n_batches: int = 20, warmup: int = 2, loss_func: Any = None,
               rounds: int = 1) -> Bottleneck:
    """Which of loader and model limits training: items/s of the loader alone, the model alone on the same
    batches loaded beforehand, and the real training step, measured the same way, ``rounds`` times (see the
    module docstring).

    ``learn``: a ``Learner``, or ``(dls, model)`` (a Learner is made with ``loss_func`` or the default loss of
    the target). The learner's weights, optimiser and recorded history are put back afterwards, and so are the
    global random states (torch's, CUDA's, Python's and NumPy's), so a seeded ``fit`` after it trains as it would
    have without it. Its callbacks that show, log, checkpoint, stop or time a fit (those of
    ``pipekit.learn.schedule.NOT_TRAINING``, which ``lr_find`` leaves out too: a ``ShowGraphCallback``,
    ``CSVLogger``, ``SaveModelCallback``, ``EarlyStoppingCallback``, ...) are left out of its steps, so the files
    they wrote stay as they are and none is added.

    >>> import numpy as np
    >>> from pipekit.data import DataLoaders, TensorStore
    >>> from pipekit.learn import MLP, CrossEntropyLossFlat
    >>> x = np.random.default_rng(0).normal(size=(512, 8)).astype("float32"); y = (x[:, 0] > 0).astype("int64")
    >>> dls = DataLoaders.from_stores([TensorStore(x), TensorStore(y)], [TensorStore(x[:64]), TensorStore(y[:64])],
    ...                               bs=64, seed=0, device="cpu")
    >>> b = bottleneck((dls, MLP(8, 2, layers=[16])), n_batches=6, loss_func=CrossEntropyLossFlat())
    >>> b.limiter in ("loader", "model", "balanced")
    True
    """
    from pipekit.learn import Learner

    check("bottleneck", n_batches=(n_batches, Interval(1, None, integer=True)),
          warmup=(warmup, Interval(0, None, integer=True)), rounds=(rounds, Interval(1, None, integer=True)))
    if isinstance(learn, tuple):
        if len(learn) != 2:
            raise ParameterError("bottleneck: give a Learner or a pair (dls, model)")
        learn = Learner(learn[0], learn[1], loss_func=loss_func)
    if not isinstance(learn, Learner):
        raise ParameterError(f"bottleneck: give a Learner or a pair (dls, model), got {type(learn).__name__}")
    before = machine()
    model_state = copy.deepcopy(learn.model.state_dict())
    modes = {m: m.training for m in learn.model.modules()}  # train/eval mode, put back with the weights
    saved = {k: learn.__dict__.get(k) for k in ("opt", "epoch", "n_epoch", "final_record")}
    recorder = dict(vars(learn.recorder))
    runner = as_runner(learn.dls.train)
    sync = learn.device.type == "cuda"
    total = n_batches + warmup
    rates: dict[str, list[float]] = {"loader": [], "model": [], "full": []}
    # the timed steps draw dropout masks and shuffles: a seeded fit afterwards must not see them
    with kept_random_states():
        try:
            # the model phase's batches: the first of the same epoch the other phases stream (a text loader puts its
            # longest batch first: the warm-up gets it, as in the other phases)
            cached = list(_stream(runner, min(total, warmup + MODEL_BATCHES)))
            timed = cached[warmup:] or cached
            # its steps are no epoch of training, as lr_find's are not: nothing is shown (a ShowGraphCallback's
            # graph), logged (a CSVLogger's file), checkpointed (a SaveModelCallback's files), early-stopped or timed
            with learn.removed_cbs(NOT_TRAINING):
                for r in range(rounds):
                    for phase in (("loader", "model", "full") if r % 2 == 0 else ("full", "model", "loader")):
                        if phase == "model":
                            batches: Any = itertools.chain(cached[:warmup],
                                                           itertools.islice(itertools.cycle(timed), n_batches))
                        else:
                            batches = _stream(runner, total)
                        timer = StepTimer(batches, warmup=warmup, skip_model=phase == "loader", sync=sync)
                        learn.opt = None  # a fresh optimiser per phase: the learner's own is left as it was
                        learn.fit(1, cbs=[timer])
                        rates[phase].append(timer.items_per_s)
                        learn.model.load_state_dict(model_state)
            del cached, timed
        finally:
            learn.model.load_state_dict(model_state)
            for m, training in modes.items():
                m.training = training
            for k, v in saved.items():
                setattr(learn, k, v)
            learn.recorder.__dict__.update(recorder)
            learn.batch_wrapper = None
    med = {k: statistics.median(v) for k, v in rates.items()}
    return Bottleneck(med["loader"], med["model"], med["full"], n_batches, runner.bs, str(learn.device), before,
                      rounds, rates)

