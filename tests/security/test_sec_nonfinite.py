"""NaN and inf never give silent answers: FillMissing fills and reports inf, predictions refuse non-finite
inputs (torch learners and the non-torch backends) and NaN weights, and a diverging fit stops with an
error, the last finite weights put back. Real data: adult_sample."""
from __future__ import annotations

import copy
import doctest
import warnings

import numpy as np
import polars as pl
import pytest
import torch

import pipekit.learn.callbacks.nonfinite as nonfinite_module
from pipekit.backends import GBM, RandomForest
from pipekit.data.seed import set_seed
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path
from pipekit.learn import Callback, NonFiniteError, NonFiniteInputError, TerminateOnNaNCallback, accuracy
from pipekit.learn.callbacks import FiniteInputsCheck
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, tabular_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT = ["age", "fnlwgt", "hours-per-week"]  # no nulls in adult_sample: nothing for a proc to fill


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv").head(4000)


@pytest.fixture(scope="module")
def tab_unfilled(adult) -> Tabular:
    """Processed without FillMissing: an inf in a new row reaches the model matrix."""
    return Tabular(adult, procs=[Categorify, Normalize], cat_names=CAT, cont_names=CONT, y_names="salary",
                   splits=RandomSplitter(0.2, seed=42))


@pytest.fixture(scope="module")
def learner(tab_unfilled):
    set_seed(0)
    learn = tabular_learner(tab_unfilled.dataloaders(bs=256, seed=0), layers=[20, 10], metrics=accuracy)
    learn.fit(1, 1e-2)
    return learn


def _with(df: pl.DataFrame, col: str, rows: list[int], value: float) -> pl.DataFrame:
    idx = pl.int_range(pl.len())
    return df.with_columns(pl.when(idx.is_in(rows)).then(value).otherwise(pl.col(col).cast(pl.Float64)).alias(col))


def test_fill_missing_treats_inf_in_training_rows_as_missing_and_reports_it(adult):
    train_idx = Tabular(adult, cat_names=CAT, cont_names=CONT, y_names="salary",
                        splits=RandomSplitter(0.2, seed=42)).train_idx
    bad = sorted(int(i) for i in train_idx[[3, 50, 700]])
    df = _with(_with(adult, "age", bad[:2], float("inf")), "age", bad[2:], float("-inf"))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tab = Tabular(df, cat_names=CAT, cont_names=CONT, y_names="salary", splits=RandomSplitter(0.2, seed=42))
    msgs = [str(x.message) for x in w if "infinite" in str(x.message)]
    assert len(msgs) == 1 and "'age'" in msgs[0] and "3 infinite value(s)" in msgs[0] and "0 null/NaN" in msgs[0]
    fill = next(p for p in tab.procs if isinstance(p, FillMissing))
    ages = adult["age"].to_numpy().astype(np.float64)
    keep = np.setdiff1d(train_idx, bad)
    assert fill.fill_values_["age"] == pytest.approx(float(np.median(ages[keep])))  # inf not in the statistic
    assert "age_na" in tab.cat_names and "age" in fill.na_columns_
    # every processed value is finite, the inf rows are flagged and hold the fill value
    conts = tab.train.conts.to_numpy()
    assert np.isfinite(conts).all() and np.isfinite(tab.valid.conts.to_numpy()).all()
    flags = tab.frame["age_na"].to_numpy()
    codes = tab.classes["age_na"]
    assert [codes[int(c)] for c in flags[bad]] == ["true"] * 3
    assert sum(codes[int(c)] == "true" for c in flags) == 3
    norm = next(p for p in tab.procs if isinstance(p, Normalize))
    expected = (fill.fill_values_["age"] - norm.means_["age"]) / norm.stds_["age"]
    np.testing.assert_allclose(tab.frame["age"].to_numpy()[bad], expected, rtol=1e-5)
    # a model trains on it with a finite loss
    set_seed(0)
    learn = tabular_learner(tab.dataloaders(bs=256, seed=0), layers=[20, 10])
    learn.fit(1, 1e-2)
    assert np.isfinite(learn.recorder.values[-1][0])


def test_fill_missing_fills_and_reports_inf_in_new_rows(adult):
    tab = Tabular(adult, cat_names=CAT, cont_names=CONT, y_names="salary", splits=RandomSplitter(0.2, seed=42))
    rows = _with(adult.head(6), "fnlwgt", [1, 4], float("inf"))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = tab.new(rows)
    msgs = " ".join(str(x.message) for x in w)
    assert "'fnlwgt'" in msgs and "2 infinite value(s)" in msgs
    conts = out.conts.to_numpy()
    assert np.isfinite(conts).all()
    fill = next(p for p in tab.procs if isinstance(p, FillMissing))
    norm = next(p for p in tab.procs if isinstance(p, Normalize))
    expected = (fill.fill_values_["fnlwgt"] - norm.means_["fnlwgt"]) / norm.stds_["fnlwgt"]
    np.testing.assert_allclose(out.conts["fnlwgt"].to_numpy()[[1, 4]], expected, rtol=1e-5)


def test_predict_refuses_inf_naming_column_and_row(learner, adult):
    row = adult.row(0, named=True)
    row["age"] = float("inf")
    with pytest.raises(NonFiniteInputError, match=r"column 'age' of row 0 is not a finite number \(inf\)"):
        learner.predict(row)
    # a test set: the bad value sits in the second batch, at row 13 of the frame given
    new = _with(adult.head(20), "fnlwgt", [13], float("-inf"))
    dl = learner.dls.test_dl(new, bs=8)
    with pytest.raises(NonFiniteInputError, match=r"column 'fnlwgt' of row 13 is not a finite number \(-inf\)"):
        learner.get_preds(dl=dl)
    # the accelerator's way (flags kept on the device, read once at the end) names the same cell
    with pytest.raises(NonFiniteInputError, match=r"column 'fnlwgt' of row 13 is not a finite number \(-inf\)"):
        learner.get_preds(dl=dl, cbs=[FiniteInputsCheck(dl, defer=True)])
    # the same rows without the inf predict finite probabilities
    preds = learner.get_preds(dl=learner.dls.test_dl(adult.head(20), bs=8))[0]
    assert preds.shape == (20, 2) and torch.isfinite(preds).all()


def test_a_non_finite_input_is_named_with_the_call_that_met_it(adult):
    splits = RandomSplitter(0.2, seed=42)
    valid_idx = Tabular(adult, cat_names=CAT, cont_names=CONT, y_names="salary", splits=splits).valid_idx
    bad = int(valid_idx[5])  # a validation row: the training statistics stay finite
    tab = Tabular(_with(adult, "age", [bad], float("inf")), procs=[Categorify, Normalize], cat_names=CAT,
                  cont_names=CONT, y_names="salary", splits=splits)
    set_seed(0)
    dls = tab.dataloaders(bs=256, seed=0)
    learn = tabular_learner(dls, layers=[20, 10])
    cell = r"column 'age' of row \d+ is not a finite number \(inf\)"
    with pytest.raises(NonFiniteInputError, match=rf"^fit: {cell}"):
        learn.fit(1, 1e-2, cbs=[FiniteInputsCheck(dls.valid)])  # the check in fit's validation phase
    with pytest.raises(NonFiniteInputError, match=rf"^validate: {cell}"):
        learn.validate(cbs=[FiniteInputsCheck(dls.valid)])
    with pytest.raises(NonFiniteInputError, match=rf"^get_preds: {cell}"):
        learn.get_preds()
    row = adult.row(0, named=True)
    row["age"] = float("inf")
    with pytest.raises(NonFiniteInputError, match=r"^predict: column 'age' of row 0 is not a finite number \(inf\)"):
        learn.predict(row)


def test_the_call_named_is_the_pass_the_learner_runs(adult):
    """The message names the pass the learner is running (learn.pass_bar), not the outermost call on the stack: a
    callback's get_preds during a fit is get_preds, and predict runs a pass of its own, named so on its bar."""
    splits = RandomSplitter(0.2, seed=42)
    valid_idx = Tabular(adult, cat_names=CAT, cont_names=CONT, y_names="salary", splits=splits).valid_idx
    tab = Tabular(_with(adult, "age", [int(valid_idx[5])], float("inf")), procs=[Categorify, Normalize],
                  cat_names=CAT, cont_names=CONT, y_names="salary", splits=splits)
    set_seed(0)
    dls = tab.dataloaders(bs=256, seed=0)
    learn = tabular_learner(dls, layers=[20, 10])

    class PredsEachEpoch(Callback):
        def after_epoch(self):
            self.learn.get_preds()

    with pytest.raises(NonFiniteInputError, match=r"^get_preds: column 'age' of row \d+ is not a finite number"):
        learn.fit(1, 1e-2, cbs=PredsEachEpoch())

    class Bars(Callback):
        def __init__(self):
            self.seen = []

        def before_validate(self):
            self.seen.append(self.learn.pass_bar)

    bars = Bars()
    learn.add_cb(bars)
    try:
        learn.predict(adult.row(1, named=True))
        assert bars.seen == ["predict"]
        learn.get_preds(dl=dls.test_dl(adult.head(3)))
        assert bars.seen == ["predict", "get_preds"]
    finally:
        learn.remove_cb(bars)
    assert learn.pass_bar is None and not learn.validation_only


@pytest.mark.parametrize("make", [lambda: RandomForest("classification", n_estimators=10, n_jobs=1, oob_score=False),
                                  lambda: GBM("classification", n_estimators=20, n_jobs=1)], ids=["forest", "gbm"])
def test_backends_refuse_inf_naming_column_and_row(tab_unfilled, adult, make):
    model = make().fit(tab_unfilled.train, tab_unfilled.valid)
    ok = tab_unfilled.new(adult.head(10))
    assert np.isfinite(model.predict(ok)).all()
    bad = tab_unfilled.new(_with(adult.head(10), "age", [6], float("inf")))
    with pytest.raises(ValueError, match=r"column 'age' holds inf at row 6 \(1 infinite value"):
        model.predict(bad)
    with pytest.raises(ValueError, match=r"column 'age' holds inf at row 6"):
        model.score(bad)


class _FiniteLossWeights(Callback):
    """Keeps the weights (and buffers) of the most recent training batch whose loss was finite, taken
    after the forward pass and before the step: the state a diverged fit must go back to."""

    order = 16  # right after TerminateOnNaNCallback: it never sees a batch the guard stopped

    def before_fit(self):
        self.last = None
        self.batches = 0

    def after_loss(self):
        if self.learn.training and bool(torch.isfinite(self.learn.loss)):
            self.last = copy.deepcopy(self.learn.model.state_dict())
            self.batches += 1


def _all_finite(model) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def test_huge_lr_stops_with_error_and_keeps_last_finite_weights(tab_unfilled):
    set_seed(0)
    learn = tabular_learner(tab_unfilled.dataloaders(bs=128, seed=0), layers=[50, 20], metrics=accuracy)
    probe = _FiniteLossWeights()
    with pytest.raises(NonFiniteError, match=r"training stopped at epoch 0, batch \d+: .*Lower the learning rate"):
        learn.fit(2, 1e6, cbs=[probe])
    assert probe.batches >= 1 and _all_finite(learn.model)
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, probe.last[k]), k
    # the learner stays usable: its answers are finite probabilities
    preds = learn.get_preds()[0]
    assert torch.isfinite(preds).all()
    # and it can go on training at a sane learning rate from there
    learn.fit(1, 1e-3)
    assert np.isfinite(learn.recorder.values[-1][0])


def test_deferred_checks_go_back_to_the_last_check_that_passed(tab_unfilled):
    def run(guard):
        set_seed(0)
        learn = tabular_learner(tab_unfilled.dataloaders(bs=128, seed=0), layers=[50, 20])
        if guard is not None:
            learn.add_cb(guard)
        states = []

        class Every(Callback):
            order = 17

            def after_loss(self):
                if self.learn.training:
                    states.append(copy.deepcopy(self.learn.model.state_dict()))

        with pytest.raises(NonFiniteError) as err:
            learn.fit(2, 1e3, cbs=[Every()])
        return learn, states, str(err.value)

    _, _, every_batch = run(None)
    learn, states, msg = run(TerminateOnNaNCallback(check_every=4))  # the accelerator cadence, on the CPU
    where = every_batch.split(":")[0]
    assert where.startswith("training stopped at epoch 0, batch ") and msg.split(":")[0] == where
    assert "last check that passed (checked every 4 batches)" in msg
    assert _all_finite(learn.model)
    # back to the state of batch 4k-1 (a check point) of the last check that passed: a check covers the
    # losses and buffers of the batches before it, and the weights of the steps before the previous one
    bad = int(where.rsplit(" ", 1)[1]) + (1 if "optimiser step" in msg else 0)
    matches = [i for i, s in enumerate(states) if all(torch.equal(v, s[k]) for k, v in learn.model.state_dict().items())]
    assert matches == [(bad // 4) * 4 - 1]


def test_opting_out_trains_through_nan_and_nan_weights_refuse_to_predict(tab_unfilled, adult):
    set_seed(0)
    learn = tabular_learner(tab_unfilled.dataloaders(bs=128, seed=0), layers=[50, 20], terminate_on_nan=False)
    assert not hasattr(learn, "terminate_on_nan")
    with pytest.warns(RuntimeWarning, match="not finite"):
        learn.fit(1, 1e6)
    assert not _all_finite(learn.model)
    with pytest.raises(NonFiniteError, match=r"the model's weights hold NaN/inf in '.*'.*predict"):
        learn.predict(adult.row(0, named=True))
    with pytest.raises(NonFiniteError, match="weights hold NaN/inf"):
        learn.get_preds()
    # the default learner has the guard; removing it is the other way to opt out
    other = tabular_learner(tab_unfilled.dataloaders(bs=128, seed=0), layers=[8])
    assert isinstance(other.terminate_on_nan, TerminateOnNaNCallback)
    other.remove_cb(TerminateOnNaNCallback)
    assert not any(isinstance(c, TerminateOnNaNCallback) for c in other.cbs)


def test_nan_in_one_weight_refuses_predict(learner, adult):
    learn = copy.deepcopy(learner)
    with torch.no_grad():
        learn.model.layers[0].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"'layers\.0\.weight'.*load a checkpoint"):
        learn.predict(adult.row(0, named=True))
    assert torch.isfinite(learner.predict(adult.row(0, named=True))[2]).all()


def test_lr_find_still_runs_to_divergence(tab_unfilled):
    set_seed(0)
    learn = tabular_learner(tab_unfilled.dataloaders(bs=64, seed=0), layers=[20, 10])
    before = copy.deepcopy(learn.model.state_dict())
    res = learn.lr_find(end_lr=1e5, num_it=60, show_plot=False)
    assert np.isfinite(res.valley) and any(isinstance(c, TerminateOnNaNCallback) for c in learn.cbs)
    assert all(torch.equal(v, before[k]) for k, v in learn.model.state_dict().items())


def test_nonfinite_docstring_examples():
    assert doctest.testmod(nonfinite_module, optionflags=doctest.ELLIPSIS).failed == 0
