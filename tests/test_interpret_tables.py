"""Tables of decoded rows where the items are rows of a table: the top losses of a tabular and a collaborative-
filtering learner, the numbers and texts of ``show_batch``/``show_results`` tables as a notebook shows them, and
a short ``Contributions`` repr; on the real adult_sample and movie_lens_sample data."""

from __future__ import annotations

import html
import math
import re

import numpy as np
import polars as pl
import pytest

import pipekit.data.plotting as plotting
import pipekit.datasets as D
from pipekit.backends import GBM
from pipekit.core.errors import ParameterError
from pipekit.data import RandomSplitter
from pipekit.data.seed import set_seed
from pipekit.learn import ClassificationInterpretation, Interpretation, accuracy
from pipekit.tabular import CollabDataLoaders, Tabular, TabularDataLoaders, collab_learner, tabular_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CATS, CONTS = ["workclass", "education", "marital-status"], ["age", "fnlwgt"]


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(D.path("adult_sample") / "adult.csv").head(1500)


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    return pl.read_csv(D.path("movie_lens_sample") / "ratings.csv")


@pytest.fixture(scope="module")
def tab_learn(adult):
    set_seed(0)
    dls = TabularDataLoaders.from_df(adult, y_names="salary", cat_names=CATS, cont_names=CONTS, bs=64, seed=0)
    learn = tabular_learner(dls, layers=[20], metrics=accuracy)
    learn.fit_one_cycle(1)
    return learn


@pytest.fixture(scope="module")
def collab_learn(ratings):
    set_seed(0)
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=0)
    learn = collab_learner(dls, n_factors=20, y_range=(0, 5.5))
    learn.fit_one_cycle(1, 5e-3)
    return learn


@pytest.fixture
def notebook(monkeypatch):
    """Plots and tables go where a notebook shows them; returns what was displayed."""
    shown: list = []
    monkeypatch.setattr(plotting, "plot_mode", lambda: "inline")
    monkeypatch.setattr("IPython.display.display", lambda obj, *a, **k: shown.append(obj))
    return shown


def html_rows(obj) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the one HTML table ``obj`` displays as, each cell's text unescaped."""
    text = obj._repr_html_()
    assert text.count("<table") == 1
    header = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", text)]
    body = text.split("<tbody>", 1)[1]
    rows = [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
            for r in re.findall(r"<tr>(.*?)</tr>", body)]
    return header, rows


def test_tabular_top_losses_are_the_decoded_rows_with_target_prediction_loss_and_probability(tab_learn, adult,
                                                                                              notebook):
    interp = ClassificationInterpretation.from_learner(tab_learn)
    losses, idxs = interp.top_losses(3)
    assert interp.plot_top_losses(3) is None
    assert len(notebook) == 1
    header, rows = html_rows(notebook[0])
    assert header == [*CATS, *CONTS, "salary", "salary_pred", "loss", "probability"]
    assert len(rows) == 3 and "&quot;" not in notebook[0]._repr_html_()
    # in loss order, and each row is the validation row it is the loss of, decoded to the data's own values
    original = adult[tab_learn.dls.valid_ds.idxs[idxs.numpy()].tolist()]
    for cells, loss, i, raw in zip(rows, losses.tolist(), idxs.tolist(), original.iter_rows(named=True)):
        row = dict(zip(header, cells))
        assert float(row["loss"]) == pytest.approx(loss, abs=1e-4)
        assert [row[c].strip() for c in CATS] == [raw[c].strip() for c in CATS]
        assert float(row["age"]) == pytest.approx(raw["age"], abs=1e-3)
        assert float(row["fnlwgt"]) == pytest.approx(raw["fnlwgt"], rel=1e-5)
        assert row["salary"] == raw["salary"]
        probability = float(row["probability"])
        assert probability == pytest.approx(float(interp.preds[i].max()), abs=1e-4)
        # the loss is the cross-entropy of the target's probability: 1 - probability where the prediction is wrong
        p_target = probability if row["salary_pred"] == row["salary"] else 1 - probability
        assert loss == pytest.approx(-math.log(p_target), abs=1e-3)
    # the values top_losses gives are the per-item losses, largest first
    assert losses.tolist() == sorted(interp.losses.tolist(), reverse=True)[:3]


def test_collab_top_losses_show_the_real_user_and_movie_ids(collab_learn, ratings, notebook, monkeypatch, capsys):
    interp = Interpretation.from_learner(collab_learn)
    losses, idxs = interp.top_losses(4)
    interp.plot_top_losses(4)
    header, rows = html_rows(notebook[0])
    assert header == ["userId", "movieId", "rating", "rating_pred", "loss"]
    triples = set(ratings.select("userId", "movieId", "rating").iter_rows())
    original = ratings[collab_learn.dls.valid_ds.idxs[idxs.numpy()].tolist()]
    for cells, loss, raw in zip(rows, losses.tolist(), original.iter_rows(named=True)):
        user, movie, rating, pred, shown_loss = cells
        # the ids a user gave that rating under, not the embedding codes
        assert (int(user), int(movie), float(rating)) in triples
        assert (int(user), int(movie), float(rating)) == (raw["userId"], raw["movieId"], raw["rating"])
        assert float(shown_loss) == pytest.approx(loss, abs=1e-4)
        assert abs(float(rating) - float(pred)) == pytest.approx(math.sqrt(loss), abs=0.006)  # 3 digits shown
    # headless: the table is printed and drawn to top_losses.png
    monkeypatch.setattr(plotting, "plot_mode", lambda: "file")
    out = interp.plot_top_losses(2)
    # top_losses.png, or top_losses_<n>.png after other figures of that name in this process
    assert re.fullmatch(r"top_losses(_\d+)?\.png", out.name) and out.stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "userId" in printed and "rating_pred" in printed and f"{losses[0].item():.4f}" in printed


def test_collab_tables_show_ratings_as_numbers(collab_learn, ratings, notebook):
    collab_learn.dls.show_batch(max_n=5)
    collab_learn.show_results(max_n=5)
    assert len(notebook) == 2
    for obj, names in zip(notebook, (["userId", "movieId", "rating"],
                                     ["userId", "movieId", "rating", "rating_pred"])):
        header, rows = html_rows(obj)
        assert header == names
        assert "&quot;" not in obj._repr_html_() and '"' not in repr(obj)
        # the rating columns are numbers, written as numbers are, and no row of column types is shown
        assert all(float(r[2]) in set(ratings["rating"].to_list()) for r in rows)
        # a rating reads as the file holds it: 4.0, not 4
        assert all(re.fullmatch(r"\d\.\d", r[2]) for r in rows), [r[2] for r in rows]
        assert all(0 <= float(r[3]) <= 5.5 for r in rows) if len(header) == 4 else True
        assert not re.search(r"\b(str|i64|f64)\b", repr(obj))


def test_tabular_tables_show_category_values_without_quotes(tab_learn, adult, notebook):
    tab_learn.dls.show_batch(max_n=4)
    header, rows = html_rows(notebook[0])
    assert header == [*CATS, *CONTS, "salary"]
    workclasses = {w.strip() for w in adult["workclass"].drop_nulls().to_list()} | {"#na#"}
    assert all(r[0].strip() in workclasses for r in rows)
    assert "&quot;" not in notebook[0]._repr_html_() and '"' not in repr(notebook[0])


def test_show_table_keeps_identifiers_with_leading_zeros_as_text(notebook):
    frame = pl.DataFrame({"id": ["007", "12"], "rating": ["4", "4.5"], "n": ["3", "10"], "name": [" Private", "x"]})
    plotting.show_table(frame)
    header, rows = html_rows(notebook[0])
    assert rows == [["007", "4.0", "3", " Private"], ["12", "4.5", "10", "x"]]


@pytest.fixture(scope="module")
def gbm_contributions(adult):
    tab = Tabular(adult, cat_names=["workclass", "education"], cont_names=["age", "hours-per-week"],
                  y_names="salary", splits=RandomSplitter(0.2, seed=1))
    gbm = GBM("classification", n_estimators=20, n_jobs=1).fit(tab.train, tab.valid)
    return gbm.contributions(tab.valid)


def test_contributions_repr_is_a_short_summary(gbm_contributions):
    c = gbm_contributions
    text = repr(c)
    lines = text.splitlines()
    assert lines[0] == "Contributions(300 rows x 4 features, raw_score, 2 classes ['<50k', '>=50k'])"
    assert len(lines) <= 6 and "array(" not in text and len(text) < 800
    # each of the first rows: its prediction, its bias and its largest term, as frame(row) gives them
    for row in range(3):
        top = c.frame(row)
        assert lines[1 + row].startswith(f"  row {row}: raw_score of '>=50k' {c.prediction[row]:.4g} = bias "
                                         f"{c.bias[row]:.4g} + 4 terms, largest {top['feature'][0]} ")
        assert np.isclose(c.bias[row] + c.values[row].sum(), c.prediction[row])
    assert "297 more rows" in text


def test_a_plain_torch_cross_entropy_learner_has_a_confusion_matrix():
    """torch's nn.CrossEntropyLoss decodes nothing: the interpretation takes the class of the largest score (the
    matrix failed on a broadcast of 2 scores per item against one target)."""
    import torch
    from torch import nn

    from pipekit.learn import Learner
    from pipekit.vision import ImageDataLoaders, Resize

    set_seed(0)
    dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=64, seed=0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2)), loss_func=nn.CrossEntropyLoss(),
                    metrics=accuracy)
    learn.fit(1, 1e-3)
    interp = ClassificationInterpretation.from_learner(learn)
    preds, targs = learn.get_preds()
    cm = interp.confusion_matrix()
    expected = np.zeros((2, 2), dtype=np.int64)
    np.add.at(expected, (targs.numpy(), preds.argmax(1).numpy()), 1)
    assert cm.tolist() == expected.tolist() and cm.sum() == len(dls.valid_ds)
    assert np.trace(cm) / cm.sum() == pytest.approx(learn.validate()[1])  # the matrix agrees with the accuracy
    assert interp.most_confused(min_val=1)[0][2] == max(cm[0, 1], cm[1, 0])
    assert torch.equal(interp.decoded, preds.argmax(1))


def test_plot_methods_take_fastai_positional_arguments_and_path_by_name(tab_learn, notebook, monkeypatch, tmp_path):
    import pipekit.learn.interpret as interpret_module

    interp = ClassificationInterpretation.from_learner(tab_learn)
    monkeypatch.chdir(tmp_path)
    figs: list = []
    with monkeypatch.context() as m:
        m.setattr(interpret_module, "savefig_or_show", lambda fig, path, name: figs.append((fig, path)))
        # fastai's plot_confusion_matrix(normalize, title): the title is the figure's, no file is named after it
        interp.plot_confusion_matrix(True, "Adult confusion")
    assert list(tmp_path.iterdir()) == []
    assert figs[0][0].axes[0].get_title() == "Adult confusion" and figs[0][1] is None
    # fastai's plot_top_losses(k, largest): the smallest losses, smallest first
    losses, _ = interp.top_losses(4, largest=False)
    assert interp.plot_top_losses(4, False) is None
    header, rows = html_rows(notebook[-1])
    shown = [float(dict(zip(header, r))["loss"]) for r in rows]
    assert shown == pytest.approx(losses.tolist(), abs=1e-4) and shown == sorted(shown)
    # a file given where fastai's arguments stand is said to go by name; by name it is written there
    with pytest.raises(ParameterError, match="path="):
        interp.plot_top_losses(4, tmp_path / "top.png")
    with pytest.raises(ParameterError, match="path="):
        interp.plot_confusion_matrix(False, tmp_path / "cm.png")
    monkeypatch.setattr(plotting, "plot_mode", lambda: "file")
    assert interp.plot_confusion_matrix(path=tmp_path / "cm.png") == tmp_path / "cm.png"
    assert (tmp_path / "cm.png").stat().st_size > 1000
