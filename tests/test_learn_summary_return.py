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


def test_a_text_classifiers_summary_lists_each_layer_once_and_its_rows_add_up():
    # its encoder calls the LSTM once per chunk of text and reads the embedding's weights itself (no call)
    import polars as pl

    import pipekit.datasets as D
    from pipekit.text import AWD_LSTM, TextDataLoaders, text_classifier_learner

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(120)
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_pct=0.2, min_freq=3, cache_dir=False,
                                  bs=16, seed=0, seq_len=24)
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=16, n_hid=32, n_layers=1), pretrained=False,
                                    seq_len=24)
    rows = [line.split() for line in learn.summary().splitlines()[2:] if line[:1].isdigit()]
    names = [r[0] for r in rows]
    assert len(names) == len(set(names))  # once each
    lstm = next(r for r in rows if r[0].endswith("lstm"))
    assert lstm[1] == "LSTM" and lstm[2].startswith("x") and int(lstm[2][1:]) > 1  # called once per chunk
    emb = next(r for r in rows if r[0].endswith("encoder"))  # the embedding, not called: no output
    assert emb[1] == "Embedding" and "not called" in " ".join(emb) and names.index(emb[0]) < names.index(lstm[0])
    total = sum(p.numel() for p in learn.model.parameters())
    counts = [int(next(v for v in r[2:] if v.replace(",", "").isdigit()).replace(",", "")) for r in rows]
    assert sum(counts) == total


def test_a_language_models_tied_weights_count_once_in_its_summary():
    # the decoder's weight is the embedding's: listed with the embedding, not again with the decoder
    import polars as pl

    import pipekit.datasets as D
    from pipekit.text import AWD_LSTM, TextDataLoaders, language_model_learner

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(80)
    dls = TextDataLoaders.from_df(df, text_col="text", is_lm=True, valid_pct=0.2, min_freq=3, cache_dir=False, bs=8,
                                  seed=0, seq_len=24)
    learn = language_model_learner(dls, AWD_LSTM, config=dict(emb_sz=16, n_hid=32, n_layers=1), pretrained=False)
    assert learn.model[1].decoder.weight is learn.model[0].encoder.weight
    rows = [line.split() for line in learn.summary().splitlines()[2:] if line[:1].isdigit()]
    counts = {r[0]: int(next(v for v in r[2:] if v.replace(",", "").isdigit()).replace(",", "")) for r in rows}
    assert sum(counts.values()) == sum(p.numel() for p in learn.model.parameters())
    emb = learn.model[0].encoder.weight.numel()
    assert counts["0.encoder"] == emb and counts["1.decoder"] == learn.model[1].decoder.bias.numel()


def test_a_layer_holding_parameters_of_its_own_has_a_row_and_the_rows_add_up(mnist_dls):
    """A module with layers and a parameter of its own (a learnable scale, a ViT's class token) gets a row of its own
    parameters, before its layers', so the rows add up to the total, which counts them."""
    import torch

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.g = nn.Parameter(torch.ones(2))
            self.lin = nn.Linear(28 * 28, 2)

        def forward(self, x):
            return self.lin(x.flatten(1)) * self.g

    model = nn.Sequential(Scaled())
    model.frozen = nn.Parameter(torch.zeros(3), requires_grad=False)  # the root's own, frozen
    text = str(Learner(mnist_dls, model, loss_func=CrossEntropyLossFlat()).summary())
    rows = [line.split() for line in text.splitlines() if line[:1].isdigit() or " (own)" in line]
    assert [r[0] for r in rows] == ["Sequential", "0", "0.lin"] and rows[0][1] == "(own)"
    own = {r[0]: r for r in rows}
    assert own["Sequential"][-2:] == ["3", "no"] and own["0"][-2:] == ["2", "yes"]
    assert sum(int(r[-2].replace(",", "")) for r in rows) == sum(p.numel() for p in model.parameters())
