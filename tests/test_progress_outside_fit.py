"""Progress bars outside a fit: get_preds, validate and tta draw the learner's bar over their batches (no table,
the fit's record untouched), hidden by ``no_bar()`` and PIPEKIT_QUIET=1, and never doubled inside a fit; bars
forced on where output is no terminal leave plain lines on standard error; bars on a terminal draw on standard
error, not among the results; permutation importance counts its shuffles with a bar."""

from __future__ import annotations

import copy
import io

import pytest
import rich
import rich.console
from test_models_helpers import adult
from torch import nn

import pipekit.data.progress as progress_module
import pipekit.datasets as D
from pipekit.backends import RandomForest
from pipekit.data import get_image_files
from pipekit.data.progress import ProgressMeter, bar_drawing, progress_bar
from pipekit.inspection import permutation_importance
from pipekit.learn import Callback, Learner, accuracy

pytestmark = pytest.mark.data


class Recorded(ProgressMeter):
    """Every bar made, with its description, total, whether it shows, and the last count it reached."""

    made: list[Recorded] = []

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        Recorded.made.append(self)


def bars() -> list[tuple[str, int | None]]:
    """The bars shown since the last call, as (description, total), each counted to its total."""
    shown = [m for m in Recorded.made if m.shows]
    assert all(m.closed and m.count == m.total for m in shown)
    Recorded.made = []
    return [(m.description, m.total) for m in shown]


@pytest.fixture
def drawn(monkeypatch, terminal_bars):
    """Bars on, drawn by rich into a string as on a terminal; the bars made are recorded."""
    monkeypatch.setattr(progress_module, "ProgressMeter", Recorded)
    Recorded.made = []
    yield terminal_bars
    assert not bar_drawing()


@pytest.fixture(scope="module")
def fitted(mnist_dls):
    learn = Learner(mnist_dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), metrics=accuracy)
    with learn.no_logging(), learn.no_bar():
        learn.fit(1, 1e-2)
    return learn


def record(learn: Learner) -> dict:
    rec = learn.recorder
    return copy.deepcopy(
        {
            k: getattr(rec, k)
            for k in ("values", "history", "losses", "lrs", "metric_names", "iters", "valid_losses_at")
        }
    ) | {"final": learn.final_record}


def test_get_preds_validate_and_tta_draw_a_bar_over_their_batches(fitted, mnist_dls, drawn, capsys):
    learn, n = fitted, len(mnist_dls.valid)
    before = record(learn)
    preds, _ = learn.get_preds()
    assert bars() == [("get_preds", n)] and len(preds) == 699
    assert "get_preds" in drawn.getvalue() and f"{n}/{n}" in drawn.getvalue()
    learn.validate()
    assert bars() == [("validate", n)]
    learn.tta(n=2)  # one bar per pass, as fastai's
    assert bars() == [("tta plain pass", n), ("tta pass 1/2", n), ("tta pass 2/2", n)]
    files = get_image_files(D.path("mnist_tiny") / "valid")[:40]
    test_dl = mnist_dls.test_dl(files, bs=16)  # new items, 3 batches
    bars()  # the test_dl's own
    learn.get_preds(dl=test_dl)
    assert bars() == [("get_preds", 3)]
    learn.predict(files[0])  # one item, one batch: no bar
    assert bars() == []
    assert learn.batch_wrapper is None
    assert record(learn) == before  # the fit's record and table as the fit left them
    assert "train_loss" not in capsys.readouterr().out


def test_no_bar_and_quiet_hide_the_bars_of_passes(fitted, drawn, monkeypatch):
    learn = fitted
    with learn.no_bar():
        learn.get_preds()
        learn.validate()
        learn.tta(n=1)
    assert bars() == []
    learn.get_preds()  # back after the block
    assert bars() == [("get_preds", 11)]
    monkeypatch.setenv("PIPEKIT_QUIET", "1")
    seen = drawn.getvalue()
    learn.get_preds()
    learn.validate()
    learn.tta(n=1)
    assert bars() == [] and drawn.getvalue() == seen
    assert learn.batch_wrapper is None


class PredsEachEpoch(Callback):
    """Runs a validation-only pass from inside the fit, at each epoch's end."""

    def after_epoch(self):
        self.preds = self.learn.get_preds()[0]


def test_a_fit_shows_one_bar_per_phase_and_a_pass_inside_it_none(mnist_dls, drawn, capsys):
    learn = Learner(
        mnist_dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), metrics=accuracy, cbs=PredsEachEpoch()
    )
    learn.fit(1, 1e-2)
    assert bars() == [("epoch 1/1 train", len(mnist_dls.train)), ("epoch 1/1 valid", len(mnist_dls.valid))]
    assert len(learn.preds_each_epoch.preds) == 699 and learn.batch_wrapper is None
    assert "train_loss" in capsys.readouterr().out  # the fit's table still prints


def test_bars_forced_on_into_a_file_leave_plain_lines_on_stderr(monkeypatch, capsys):
    monkeypatch.delenv("PIPEKIT_QUIET", raising=False)
    monkeypatch.setenv("PIPEKIT_PROGRESS", "1")  # captured output: no terminal
    assert sum(progress_bar(range(5), description="forced bar")) == 10
    out, err = capsys.readouterr()
    assert out == ""  # nothing among the results, not even a blank line
    assert err.startswith("forced bar: 5/5 in ") and err.endswith(" s\n") and err.count("\n") == 1
    assert "\r" not in err and "\x1b" not in err
    monkeypatch.setattr(ProgressMeter, "PLAIN_EVERY", 0.0)  # a line at every step of a long bar
    meter = ProgressMeter(3, "long", notes=True)
    meter.update(1, "loss 0.5")
    meter.update(2)
    meter.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("long: 1/3 [") and lines[0].endswith("loss 0.5")
    assert lines[1].startswith("long: 2/3 [") and lines[2].startswith("long: 2/3 in ")


def test_a_learners_pass_forced_on_into_a_file_leaves_one_line(fitted, monkeypatch, capsys):
    monkeypatch.delenv("PIPEKIT_QUIET", raising=False)
    monkeypatch.setenv("PIPEKIT_PROGRESS", "1")
    fitted.get_preds()
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("get_preds: 11/11 in ") and err.count("\n") == 1


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_on_a_terminal_draw_on_stderr_not_among_the_results(monkeypatch):
    monkeypatch.delenv("PIPEKIT_QUIET", raising=False)
    monkeypatch.delenv("PIPEKIT_PROGRESS", raising=False)
    out, err = Terminal(), Terminal()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr(rich, "_console", None)  # rich's own console, on standard output
    assert sum(progress_bar(range(4), description="on a terminal", leave=True)) == 6
    assert "on a terminal" in err.getvalue() and "4/4" in err.getvalue()
    assert out.getvalue() == ""


def test_permutation_importance_counts_columns_times_repeats(drawn):
    train, valid = adult(3000)
    rf = RandomForest("classification", n_estimators=10, n_jobs=1).fit(train)
    imp = permutation_importance(rf, valid, n_repeats=2, seed=0, features=["age", "relationship", "fnlwgt"])
    assert len(imp) == 3
    assert bars() == [("permutation importance", 6)]
    assert "permutation importance" in drawn.getvalue()
