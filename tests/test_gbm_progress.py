"""GBM's progress bar over boosting rounds on real adult rows: the rounds it reaches, early stopping closing it at
the stopping round, silence under PIPEKIT_QUIET and inside a bagged model's bar, and predictions unchanged by it;
``progress_bar`` drawing through the same ProgressMeter, and a bar left mid-loop silencing no later bar."""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_models_helpers import adult

import pipekit.backends.gbm as gbm_module
import pipekit.data.progress as progress_module
from pipekit.backends import GBM
from pipekit.data.progress import ProgressMeter, bar_drawing, progress_bar
from pipekit.ensemble import BaggedModel


class Recorded(ProgressMeter):
    """The GBM's meter, kept for the test to read, with each update it was given."""

    made: list[Recorded] = []

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.updates: list[tuple[int, str]] = []
        Recorded.made.append(self)

    def update(self, count: int, note: str = "") -> None:
        self.updates.append((count, note))
        super().update(count, note)


@pytest.fixture
def meters(monkeypatch, terminal_bars):
    """Bars on (as on a terminal), drawn into a string by rich; the GBM meters made, in order."""
    monkeypatch.setattr(gbm_module, "ProgressMeter", Recorded)
    Recorded.made = []
    Recorded.out = terminal_bars
    yield Recorded.made
    assert not bar_drawing()  # every bar closed


@pytest.fixture(scope="module")
def splits():
    return adult(6000)


def test_bar_reaches_every_round(meters, splits):
    train, _ = splits
    gbm = GBM("classification", n_estimators=200, n_jobs=1).fit(train)
    [meter] = meters
    assert meter.shows and meter.closed
    assert (meter.total, meter.count) == (200, 200)
    assert meter.description == "boosting GBM"
    assert len(meter.updates) < 50  # redrawn on a clock, not every round
    assert "boosting GBM" in Recorded.out.getvalue() and "200/200" in Recorded.out.getvalue()
    assert gbm.booster_.current_iteration() == 200


def test_early_stopping_closes_bar_at_stopping_round(meters, splits):
    train, valid = splits
    gbm = GBM("classification", n_estimators=1000, learning_rate=0.3, early_stopping_rounds=10, n_jobs=1,
              name="adult").fit(train, valid)
    [meter] = meters
    boosted = len(gbm.evals_result_["valid"]["binary_logloss"])  # the rounds LightGBM scored before it stopped
    assert meter.closed and meter.total == 1000
    assert meter.count == boosted < 1000
    assert gbm.best_iteration_ == boosted - 10
    assert meter.note == f"valid binary_logloss {gbm.evals_result_['valid']['binary_logloss'][-1]:.4g}"
    assert "boosting adult" in Recorded.out.getvalue()


def test_time_limit_closes_bar(meters, splits):
    train, _ = splits
    gbm = GBM("classification", n_estimators=100000, time_limit=0.5, n_jobs=1).fit(train)
    [meter] = meters
    assert gbm.stopped_on_time_ and meter.closed
    assert meter.count == gbm.booster_.current_iteration() < 100000


@pytest.mark.parametrize("env", [{"PIPEKIT_QUIET": "1", "PIPEKIT_PROGRESS": "1"}, {}])
def test_silent_when_quiet_or_not_a_terminal(meters, splits, monkeypatch, env):
    monkeypatch.delenv("PIPEKIT_PROGRESS")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    train, valid = splits
    GBM("classification", n_estimators=100, n_jobs=1).fit(train, valid)
    [meter] = meters
    assert not meter.shows and meter.updates == []
    assert Recorded.out.getvalue() == ""


def test_predictions_identical_with_and_without_bar(meters, splits, monkeypatch):
    train, valid = splits
    shown = GBM("classification", n_estimators=150, n_jobs=1).fit(train, valid)
    monkeypatch.setenv("PIPEKIT_QUIET", "1")
    quiet = GBM("classification", n_estimators=150, n_jobs=1).fit(train, valid)
    assert [m.shows for m in meters] == [True, False]
    assert shown.best_iteration_ == quiet.best_iteration_
    np.testing.assert_array_equal(shown.predict(valid), quiet.predict(valid))


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_no_gbm_bar_inside_bagged_bar(meters, splits, n_jobs):
    train, valid = splits
    BaggedModel(GBM("classification", n_estimators=60, n_jobs=2), n_folds=3, n_jobs=n_jobs).fit(train, valid)
    # the fold models (and their refits on the rounds early stopping chose) keep quiet under the bag's bar
    assert len(meters) >= 3 and not any(m.shows or m.updates for m in meters)
    drawn = Recorded.out.getvalue()
    assert "bagging GBM" in drawn and "boosting" not in drawn


@pytest.mark.parametrize("left", ["break", "error"])
def test_a_bar_left_mid_loop_and_still_referenced_silences_no_later_bar(meters, splits, left):
    train, _ = splits
    held = []  # the abandoned generator, kept as a notebook keeps a failed cell's traceback and its frames

    def read_rows():
        rows = progress_bar(range(len(train)), description="reading rows")
        held.append(rows)
        for i in rows:
            if i == 2:
                if left == "error":
                    raise ValueError("a row could not be read")
                break

    try:
        if left == "error":
            with pytest.raises(ValueError):
                read_rows()
        else:
            read_rows()
        assert not bar_drawing()
        GBM("classification", n_estimators=50, n_jobs=1).fit(train)
    finally:
        held[0].close()
    [meter] = meters
    assert meter.shows and meter.count == 50 and meter.closed  # drawn, not kept quiet by the bar left behind


def test_progress_bar_draws_through_progress_meter(meters, monkeypatch):
    monkeypatch.setattr(progress_module, "ProgressMeter", Recorded)
    path = os.path.join(os.environ["PIPEKIT_DATA"], "adult_sample", "adult.csv")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        chunks = iter(lambda: f.read(1 << 16), b"")
        read = b"".join(progress_bar(chunks, total=size, description="adult.csv", leave=True, unit="bytes"))
    assert len(read) == size
    [meter] = meters
    assert (meter.unit, meter.total, meter.count, meter.closed) == ("bytes", size, size, True)
    assert len(meter.updates) == -(-size // (1 << 16))  # one update per chunk, counting its bytes
    drawn = Recorded.out.getvalue()
    assert "adult.csv" in drawn and f"{size / 1e6:.1f} MB" in drawn
