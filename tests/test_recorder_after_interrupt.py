"""A fit stopped by Ctrl-C or an error keeps the smoothed losses of the batches it trained (``recorder.losses`` beside
``recorder.lrs``, drawn by ``plot_loss``), and ``ShortEpochCallback`` runs the share of each epoch fastai's runs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipekit.core.errors import ParameterError
from pipekit.data.plotting import get_pyplot
from pipekit.learn import Callback, ShortEpochCallback
from pipekit.tabular import TabularDataLoaders, tabular_learner

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
ADULT = DATA / "adult_sample" / "adult.csv"

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not ADULT.exists(), reason="needs adult_sample ($PIPEKIT_DATA)"),
]

CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT = ["age", "fnlwgt", "education-num"]


@pytest.fixture(scope="module")
def dls():
    """3,000 adult rows, the first 600 for validation: 37 training batches of 64 (the last one dropped) and 10
    validation batches."""
    df = pd.read_csv(ADULT).sample(3000, random_state=0).reset_index(drop=True)
    return TabularDataLoaders.from_df(
        df, cat_names=CAT, cont_names=CONT, y_names="salary", bs=64, valid_idx=list(range(600))
    )


@pytest.fixture
def learn(dls, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_PLOTS", str(tmp_path))
    monkeypatch.setenv("PIPEKIT_QUIET", "1")
    torch.manual_seed(0)
    return tabular_learner(dls, layers=[20, 10])


class RawLosses(Callback):
    """Each training batch's own loss, as the Recorder receives it (it runs first in after_batch)."""

    order = -100

    def before_fit(self) -> None:
        self.raw: list[float] = []

    def after_batch(self) -> None:
        if self.learn.training and self.learn.loss is not None:
            self.raw.append(float(self.learn.loss))


class Stop(Callback):
    """Raises ``error`` after the Recorder's ``after_batch`` of training batch ``at - 1``, before batch ``at`` is
    recorded: ``at`` batches are recorded."""

    def __init__(self, error: BaseException, at: int = 8):
        self.error, self.at = error, at

    def after_batch(self) -> None:
        if self.learn.training and self.learn.iter == self.at:
            raise self.error


def smoothed(raw: list[float], beta: float = 0.98) -> list[float]:
    """The Recorder's smoothing: an exponential moving average started at zero, debiased."""
    out, ema = [], 0.0
    for i, v in enumerate(raw, 1):
        ema = beta * ema + (1 - beta) * v
        out.append(ema / (1 - beta**i))
    return out


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt(), ValueError("a user callback's mistake")], ids=["ctrl-c", "error"]
)
def test_stopped_fit_keeps_its_losses(learn, tmp_path, error):
    learn.fit(1, 1e-2)  # a full fit first: the stopped one's record replaces it
    assert len(learn.recorder.losses) == len(learn.recorder.lrs) == len(learn.dls.train)
    raw = RawLosses()
    with pytest.raises(type(error)):
        learn.fit(2, 1e-2, cbs=[raw, Stop(error)])
    rec = learn.recorder
    # read before anything else (smooth_loss, get_preds) could fold the batches in
    losses = list(rec.losses)
    assert len(losses) == len(rec.lrs) == 8
    assert len(raw.raw) == 9  # batch 8 ran, and was not recorded
    assert losses == pytest.approx(smoothed(raw.raw[:8]), rel=1e-6)
    assert rec.values == []  # no epoch ended
    # folding again (another release, a read of smooth_loss) adds nothing
    rec.release()
    assert learn.smooth_loss == pytest.approx(losses[-1])
    assert rec.losses == pytest.approx(losses)

    # plot_loss draws them: into the caller's axes, and as a PNG under PIPEKIT_PLOTS
    fig, ax = get_pyplot().subplots()
    assert rec.plot_loss(skip_start=0, ax=ax) is ax
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx(losses)
    get_pyplot().close(fig)
    png = rec.plot_loss(skip_start=0)
    assert png is not None and Path(png).parent == tmp_path and Path(png).stat().st_size > 0
    assert list(get_pyplot().gca().get_lines()[0].get_ydata()) == pytest.approx(losses)
    get_pyplot().close("all")


def test_full_fit_record_is_unchanged_by_release(learn):
    raw = RawLosses()
    learn.fit(2, 1e-2, cbs=raw)
    rec = learn.recorder
    n = 2 * len(learn.dls.train)
    assert len(rec.losses) == len(rec.lrs) == len(raw.raw) == n
    assert rec.losses == pytest.approx(smoothed(raw.raw), rel=1e-6)
    before = list(rec.losses)
    rec.release()
    assert rec.losses == before and rec.iters == [n // 2, n]


def fastai_batches(n: int, pct: float) -> int:
    """The batches fastai's ShortEpochCallback runs of ``n``: it stops after the first batch whose ``iter / n_iter``
    is not below ``pct``."""
    return next((i for i in range(n) if not i / n < pct), n - 1) + 1


class Count(Callback):
    order = -100

    def before_fit(self) -> None:
        self.train, self.steps, self.valid = [], [], []

    def before_epoch(self) -> None:
        self.train.append(0)
        self.steps.append(0)
        self.valid.append(0)

    def before_batch(self) -> None:
        if self.learn.training:
            self.train[-1] += 1
        else:
            self.valid[-1] += 1

    def after_step(self) -> None:
        self.steps[-1] += 1


@pytest.mark.parametrize("short_valid", [True, False])
def test_short_epoch_runs_fastais_share(learn, short_valid):
    n_train, n_valid = len(learn.dls.train), len(learn.dls.valid)
    assert (n_train, n_valid) == (37, 10)
    # fastai 2.8's ShortEpochCallback(pct=0.1) on this data trains 5 batches (4/37 is the first share >= 0.1) and
    # validates 2 (1/10)
    assert (fastai_batches(n_train, 0.1), fastai_batches(n_valid, 0.1)) == (5, 2)
    count = Count()
    learn.fit(2, 1e-2, cbs=[count, ShortEpochCallback(pct=0.1, short_valid=short_valid)])
    valid = 2 if short_valid else n_valid
    assert count.train == count.steps == [5, 5]
    assert count.valid == [valid, valid]
    rec = learn.recorder
    assert len(rec.lrs) == len(rec.losses) == 10 and rec.iters == [5, 10]  # every batch trained is recorded
    assert len(rec.values) == 2 and all(math.isfinite(v) for row in rec.values for v in row)


@pytest.mark.parametrize("pct", [0.0, 0.25, 0.5, 1.0])
def test_short_epoch_shares(learn, pct):
    count = Count()
    learn.fit(1, 1e-2, cbs=[count, ShortEpochCallback(pct=pct)])
    assert count.train == [fastai_batches(37, pct)] and count.valid == [fastai_batches(10, pct)]


def test_short_epoch_refuses_bad_parameters():
    for bad, word in [
        ({"pct": 1.5}, "pct=1.5"),
        ({"pct": -0.1}, "pct=-0.1"),
        ({"pct": True}, "pct=True"),
        ({"short_valid": "yes"}, "short_valid='yes'"),
    ]:
        with pytest.raises(ParameterError, match=word.replace(".", r"\.")):
            ShortEpochCallback(**bad)
