"""``learn.summary()`` returns the table as text, as fastai's does: a ``str`` whose repr is the text itself, printed
nowhere by default, so ``s = learn.summary(); print(s)`` and writing it to a file work in a script and a notebook
cell or a REPL shows the table once."""
from __future__ import annotations

import code
import contextlib
import io

import pytest
from torch import nn

import pipekit
from pipekit.learn import CrossEntropyLossFlat, Learner
from pipekit.learn.summary import SummaryText


@pytest.fixture(scope="module")
def learn(mnist_dls):
    pipekit.set_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.ReLU(), nn.Linear(16, 2))
    return Learner(mnist_dls, model, loss_func=CrossEntropyLossFlat())


def test_summary_returns_the_table_as_text_and_prints_nothing(learn, capsys):
    s = learn.summary()
    assert capsys.readouterr().out == ""  # a script's bare learn.summary() line prints nothing, as in fastai
    assert isinstance(s, str) and isinstance(s, SummaryText)
    lines = s.splitlines()
    assert lines[0] == "Sequential (input 64x1x28x28)"
    layers = [line.split() for line in lines[2:6]]
    assert [row[:3] for row in layers] == [["0", "Flatten", "64x784"], ["1", "Linear", "64x16"],
                                           ["2", "ReLU", "64x16"], ["3", "Linear", "64x2"]]
    assert [row[3] for row in layers] == ["0", "12,560", "0", "34"]
    assert "Total params: 12,594  trainable: 12,594  frozen: 0" in s and s.endswith("Loss: CrossEntropyLossFlat")


def test_summary_repr_is_the_text_so_a_repl_shows_the_table_once(learn):
    s = learn.summary()
    assert repr(s) == s and type(repr(s)) is str and "\\n" not in repr(s)
    console = code.InteractiveConsole({"learn": learn})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        console.push("learn.summary()")
    assert out.getvalue() == s + "\n" and out.getvalue().count("Total params") == 1


def test_summary_text_prints_slices_and_writes_to_a_file(learn, capsys, tmp_path):
    s = learn.summary()
    print(s)
    assert capsys.readouterr().out == s + "\n"
    assert s[:29] == "Sequential (input 64x1x28x28)"
    (tmp_path / "summary.txt").write_text(s)
    assert (tmp_path / "summary.txt").read_text() == s
    assert s == learn.summary(show=False)  # the keyword spelled out gives the same text


def test_summary_show_true_still_prints_once_and_returns_nothing(learn, capsys):
    assert learn.summary(show=True) is None
    out = capsys.readouterr().out
    assert out == learn.summary() + "\n" and out.count("Total params") == 1
