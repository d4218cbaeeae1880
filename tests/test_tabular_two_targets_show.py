"""A table with two regression targets (adult_sample's age and hours-per-week): ``row, clas, probs =
learn.predict(row)`` gives ``row`` as the list of the two predictions that shows its row with each prediction in its
target's column (``row.show()``), as one target's prediction does; and two classification targets are refused
with a message saying to train one learner per target."""

from __future__ import annotations

import pandas as pd
import pytest

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, RegressionBlock
from pipekit.data.seed import set_seed
from pipekit.tabular import TabularDataLoaders, tabular_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CATS, CONTS, YS = ["workclass", "education"], ["education-num"], ["age", "hours-per-week"]


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[:3000]


@pytest.fixture(scope="module")
def learn(adult):
    """A net for the two targets, trained one epoch on adult's first 2,400 rows (the next 600 its validation rows)."""
    set_seed(0)
    dls = TabularDataLoaders.from_df(adult, cat_names=CATS, cont_names=CONTS, y_names=YS, y_block=RegressionBlock(),
                                     valid_idx=list(range(2400, 3000)), bs=64)
    learn = tabular_learner(dls, layers=[10], y_range=(0, 100))
    learn.fit(1, 1e-2)
    return learn


def shown_cells(text: str) -> list[dict[str, str]]:
    """The rows of a printed table as column -> cell text."""
    lines = [ln for ln in text.splitlines() if "┆" in ln]
    header = [c.strip() for c in lines[0].strip("│ ").split("┆")]
    return [dict(zip(header, (v.strip() for v in ln.strip("│ ").split("┆")))) for ln in lines[1:]]


def test_two_targets_predict_gives_a_row_that_shows_each_prediction_in_its_column(adult, learn, capsys):
    row, clas, probs = learn.predict(adult.iloc[2500])
    # the two predictions, in y_names order, as a list of numbers
    assert isinstance(row, list) and len(row) == 2 and all(type(v) is float for v in row)
    assert row == pytest.approx(clas.tolist()) and row == pytest.approx(probs.tolist())
    capsys.readouterr()
    row.show()
    (cells,) = shown_cells(capsys.readouterr().out)
    # one column per target holding its prediction (not the row's own age 30 and 40 hours), the inputs as read
    assert [float(cells["age"]), float(cells["hours-per-week"])] == pytest.approx(row, rel=1e-5)
    assert cells["workclass"] == adult["workclass"].iloc[2500].strip()
    assert cells["education"] == adult["education"].iloc[2500].strip()
    assert float(cells["education-num"]) == adult["education-num"].iloc[2500]


def test_two_classification_targets_are_refused_saying_to_train_one_learner_per_target(adult):
    with pytest.raises(ParameterError, match=r"got y_names=\['salary', 'sex'\]; train one learner per target column "
                                             r"instead \(y_names='salary' and y_names='sex', each with "
                                             r"y_block=CategoryBlock\(\)\)"):
        TabularDataLoaders.from_df(adult, cat_names=CATS, cont_names=CONTS, y_names=["salary", "sex"],
                                   y_block=CategoryBlock(), valid_idx=list(range(2400, 3000)), bs=64)


def test_two_targets_show_results_shows_each_target_and_its_prediction_in_its_own_column(adult, learn, capsys):
    capsys.readouterr()
    learn.show_results(max_n=3)
    rows = shown_cells(capsys.readouterr().out)
    assert list(rows[0]) == [*CATS, "education-num_na", *CONTS, "age", "hours-per-week", "age_pred",
                             "hours-per-week_pred"]
    # the targets are the validation rows' own (the first validation rows, in order), each prediction a number
    valid = adult.iloc[2400:2403]
    assert [float(r["age"]) for r in rows] == valid["age"].tolist()
    assert [float(r["hours-per-week"]) for r in rows] == valid["hours-per-week"].tolist()
    preds = learn.get_preds(dl=learn.dls.valid.new(shuffle=False))[0][:3]
    for r, p in zip(rows, preds.tolist()):
        assert [float(r["age_pred"]), float(r["hours-per-week_pred"])] == pytest.approx(p, rel=5e-3)
