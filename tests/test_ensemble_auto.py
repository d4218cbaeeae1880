"""fit_ensemble on real adult rows: every choice made on training rows (the validation labels change nothing),
weights reproduced from the recorded out-of-fold predictions, the time limit, and the whole ensemble
predicting raw rows after loading in a fresh process."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import polars as pl
import pytest
from test_models_helpers import ADULT_CATS, ADULT_CONTS

from pipekit.backends import GBM, ExtraTrees, SklearnModel, as_data
from pipekit.core import DataError, ParameterError
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path
from pipekit.ensemble import (BaggedModel, Candidate, StackingEnsemble, TorchTabular, WeightedEnsemble,
                              fit_ensemble)
from pipekit.ensemble.bagged import Budget
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

N_ROWS = 3000


def raw_adult() -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv").head(N_ROWS)


def make_tab(df: pl.DataFrame) -> Tabular:
    return Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=ADULT_CATS, cont_names=ADULT_CONTS,
                   y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42))


def candidates() -> list[Candidate]:
    from sklearn.linear_model import LogisticRegression

    return [Candidate("gbm", GBM("classification", learning_rate=0.2, n_estimators=200, n_jobs=1), 1.0, 1.0),
            Candidate("extra_trees", ExtraTrees("classification", n_estimators=20, n_jobs=1), 0.3, 1.0),
            Candidate("logistic", SklearnModel(LogisticRegression(max_iter=300), "classification"), 0.5, 0.5)]


@pytest.fixture(scope="module")
def tab():
    return make_tab(raw_adult())


@pytest.fixture(scope="module")
def weighted(tab):
    return fit_ensemble(tab, metric="accuracy", candidates=candidates(), n_folds=3, stack=False, verbose=False)


def test_weights_are_what_the_recorded_out_of_fold_predictions_give(weighted, tab):
    ens = weighted
    assert isinstance(ens, WeightedEnsemble) and ens.selected_on_ == "out_of_fold"
    rep = ens.report_
    assert rep["model"].to_list() == ["gbm", "logistic", "extra_trees", "weighted_ensemble", "total"]  # value/cost
    assert set(rep["status"][:3]) == {"fitted"} and rep["status"][3] == "returned"
    # every member bagged on the training rows; the ensemble keeps the ones it weights
    assert all(isinstance(m, BaggedModel) and m.rows_signature_ == ens.members[0].rows_signature_ for m in ens.members)
    assert (ens.weights_ > 0).all()
    reported = dict(zip(rep["model"], rep["weight"]))
    assert [reported[m.name] for m in ens.members] == pytest.approx(ens.weights_.tolist())
    assert sum(w for w in rep["weight"].to_list() if w is not None) == pytest.approx(1.0)
    # a refit from the recorded out-of-fold predictions and the training targets reproduces the weights
    y = as_data(tab.train).y
    refit = WeightedEnsemble(ens.members, metric="accuracy", n_iter=ens.n_iter).fit_predictions(
        [m.oof_predictions_ for m in ens.members], y)
    np.testing.assert_array_equal(refit.weights_, ens.weights_)
    # and on every candidate, the members left out get no weight
    by_name = {c.name: c.model for c in candidates()}
    every = [BaggedModel(by_name[n], n_folds=3, name=n).fit(tab.train) for n in rep["model"][:3]]
    first = WeightedEnsemble(every, metric="accuracy", n_iter=ens.n_iter).fit(tab.train)
    assert {m.name for m, w in zip(every, first.weights_) if w > 0} == {m.name for m in ens.members}
    # scores in the report: out of fold for choosing, validation for reading only
    oof = dict(zip(rep["model"], rep["oof_accuracy"]))
    for m in ens.members:
        assert oof[m.name] == pytest.approx(m.oof_score("accuracy"))
        assert rep.filter(pl.col("model") == m.name)["valid_accuracy"][0] == pytest.approx(m.score(tab.valid))
    assert oof["weighted_ensemble"] >= max(oof[m.name] for m in ens.members) - 1e-12
    assert rep.filter(pl.col("model") == "weighted_ensemble")["valid_accuracy"][0] == pytest.approx(
        ens.score(tab.valid))


def test_no_validation_row_feeds_any_choice(tab):
    """The same training rows with other validation labels: the same members, weights, second layer and
    predictions; only the validation scores in the report change."""
    raw = raw_adult()
    flip = np.zeros(len(raw), dtype=bool)
    flip[tab.valid_idx] = True
    other = raw.with_columns(pl.when(pl.Series(flip)).then(
        pl.when(pl.col("salary") == "<50k").then(pl.lit(">=50k")).otherwise(pl.lit("<50k")))
        .otherwise(pl.col("salary")).alias("salary"))
    tab2 = make_tab(other)
    assert np.array_equal(tab2.train_idx, tab.train_idx) and tab2.valid.xs.equals(tab.valid.xs)
    a = fit_ensemble(tab, metric="accuracy", candidates=candidates(), n_folds=3, stack=True, verbose=False)
    b = fit_ensemble(tab2, metric="accuracy", candidates=candidates(), n_folds=3, stack=True, verbose=False)
    assert type(a) is type(b)
    np.testing.assert_array_equal(a.predict(tab.valid), b.predict(tab2.valid))
    cols = ["model", "oof_accuracy", "weight", "status"]
    assert a.report_.select(cols).equals(b.report_.select(cols))
    va, vb = a.report_["valid_accuracy"].drop_nulls(), b.report_["valid_accuracy"].drop_nulls()
    np.testing.assert_allclose(va.to_numpy(), 1 - vb.to_numpy())  # every label flipped: accuracy mirrors
    layer2 = a.report_.filter(pl.col("model") == "layer2_gbm")
    assert layer2["status"][0] in ("returned", "fitted, not returned (worse out of fold)")
    assert a.report_.filter(pl.col("status") == "returned")["valid_accuracy"][0] == pytest.approx(a.score(tab.valid))
    if isinstance(a, StackingEnsemble):
        assert a.meta_model_.rows_signature_ != a.rows_signature_  # its own rows: the members' predictions


def test_a_stack_fitting_its_own_members_chooses_nothing_on_the_validation_rows(tab):
    """StackingEnsemble with unfitted members: its fold models stop early on their own rows, not the fold they
    predict, and its refitted members on a share of the training rows, not on valid (which chose their rounds)."""
    raw = raw_adult()
    flip = np.zeros(len(raw), dtype=bool)
    flip[tab.valid_idx] = True
    tab2 = make_tab(raw.with_columns(pl.when(pl.Series(flip)).then(
        pl.when(pl.col("salary") == "<50k").then(pl.lit(">=50k")).otherwise(pl.lit("<50k")))
        .otherwise(pl.col("salary")).alias("salary")))

    def stack(t):
        return StackingEnsemble({"gbm": GBM("classification", n_estimators=300, learning_rate=0.2, n_jobs=1),
                                 "trees": ExtraTrees("classification", n_estimators=10, n_jobs=1)},
                                n_folds=3).fit(t.train, t.valid)

    a, b = stack(tab), stack(tab2)
    np.testing.assert_array_equal(a.predict(tab.valid), b.predict(tab2.valid))
    np.testing.assert_allclose(a.report_["accuracy"].to_numpy(), 1 - b.report_["accuracy"].to_numpy())
    gbm = a.members_[0]
    assert gbm.get_params()["early_stopping_rounds"] is None and gbm.get_params()["n_estimators"] < 300


def test_members_predict_the_validation_rows_inside_their_fit_time(tab, monkeypatch):
    """The report's validation scores come from the predictions each member's fold models made as they were
    fitted (and a booster's again once refitted on its stopping rows), inside their share of the time; the
    ensembles combine those instead of asking the members again."""
    calls: list[str] = []
    predict = BaggedModel.predict

    def counted(self, data):
        if len(data) == len(tab.valid):
            calls.append(self.name)
        return predict(self, data)

    monkeypatch.setattr(BaggedModel, "predict", counted)
    ens = fit_ensemble(tab, metric="accuracy", candidates=candidates(), n_folds=3, stack=True, verbose=False)
    # the second layer's meta-model (a bag of its own, unnamed) predicts once, from the members' predictions;
    # the members never predict the validation rows after their time
    assert calls == [None]
    rep = ens.report_
    members = rep.filter(pl.col("model").is_in(["gbm", "logistic", "extra_trees"]))
    assert members["refit"].to_list() == [True, None, None] and (members["fit_s"] > 0).all()
    for m in ens.members:  # the scores of the members as they are now (the booster refitted)
        assert rep.filter(pl.col("model") == m.name)["valid_accuracy"][0] == pytest.approx(m.score(tab.valid))


def test_time_limit_keeps_the_first_member_and_skips_the_rest(tab):
    with pytest.warns(UserWarning, match=r"time_limit=0.001 s cut short the fold models of gbm \(2 of 2\).*raise "
                                         "time_limit"):
        ens = fit_ensemble(tab, time_limit=1e-3, metric="accuracy", candidates=candidates(), n_folds=2,
                           verbose=False)
    rep = ens.report_
    status = dict(zip(rep["model"], rep["status"]))
    # the first member is always fitted, its fold models cut short by the time (one round each here)
    assert status["gbm"] == "fitted (2 of 2 fold models cut short by the time limit)"
    assert status["weighted_ensemble"] == "returned"
    assert all(m.stopped_on_time_ for m in ens.members[0].models_)
    assert status["logistic"] == status["extra_trees"] == status["layer2_gbm"] == "skipped: over the time limit"
    assert [m.name for m in ens.members] == ["gbm"] and ens.weights_.tolist() == [1.0]
    assert rep.filter(pl.col("model") == "logistic")["expected_s"][0] > 0
    with pytest.raises(ParameterError, match="time_limit=0 is not accepted"):
        fit_ensemble(tab, time_limit=0)
    with pytest.raises(ParameterError, match=r"candidates \['reg'\] are not classification models"):
        fit_ensemble(tab, candidates={"reg": GBM("regression")})
    with pytest.raises(ParameterError, match="candidate names must be unique"):
        fit_ensemble(tab, candidates=[Candidate("a", GBM("classification")), Candidate("a", GBM("classification"))])


def test_a_first_member_far_slower_than_the_limit_still_ends_about_in_time(tab):
    import time

    # without a limit this booster would boost for minutes on each fold
    slow = GBM("classification", learning_rate=1e-4, n_estimators=200_000, early_stopping_rounds=10**6, n_jobs=2)
    t = time.perf_counter()
    with pytest.warns(UserWarning, match=r"cut short the fold models of slow \(5 of 5\)"):
        ens = fit_ensemble(tab, time_limit=4, metric="accuracy", verbose=False,
                           candidates=[Candidate("slow", slow), Candidate("logistic", candidates()[2].model, 0.5, 0.5)])
    took = time.perf_counter() - t
    rep = ens.report_
    status = dict(zip(rep["model"], rep["status"]))
    assert took < 4 + 6 and rep["fit_s"][-1] < 4 + 6
    assert status["slow"] == "fitted (5 of 5 fold models cut short by the time limit)"
    assert dict(zip(rep["model"], rep["refit"]))["slow"] is False  # no time was left to refit it
    assert [m.name for m in ens.members] == ["slow"] and ens.members[0].n_folds == 5


def test_fold_shares_leave_room_for_the_predictions_made_after_each_fit():
    """Fold models stop fitting at their share, then predict their fold and the validation rows, in time that
    grows with what they fitted: the shares after the first shrink by that, so the last fold model ends at the
    deadline, not a prediction per round late (a fake clock: fits take exactly their share, predictions half)."""
    now = [0.0]
    budget = Budget(10.0, 5, 1, clock=lambda: now[0])
    for _ in range(5):
        share = budget.start()
        assert share is not None and share > 0.5
        now[0] += share * 1.5
        budget.done(share, share * 0.5)
    assert now[0] == pytest.approx(10.0)  # shares of what is left over the rounds left alone: 15 s


def test_only_the_libraries_of_members_fitted_are_imported(tab, monkeypatch):
    """A candidate skipped for time never imports its library: the import (about 1 s for XGBoost or CatBoost)
    would be paid inside the time limit for nothing."""
    from pipekit.ensemble import auto

    imported: list[list[str]] = []
    monkeypatch.setattr(auto, "_import_libraries", lambda cands: imported.append([c.name for c in cands]))
    with pytest.warns(UserWarning, match="cut short"):
        fit_ensemble(tab, time_limit=1e-3, metric="accuracy", candidates=candidates(), n_folds=2, verbose=False)
    assert imported == [["gbm"]]


def test_a_first_import_is_not_counted_against_the_time_limit(tab, monkeypatch):
    """A new process imports LightGBM (about 2 s with scikit-learn) when the first member is fitted: counted
    against a small limit, it left that member no time at all, and the ensemble scored the prior."""
    import time as clock

    from pipekit.ensemble import auto

    monkeypatch.setattr(auto, "_import_libraries", lambda cands: clock.sleep(2.0))
    gbm = {"gbm": GBM("classification", learning_rate=0.3, n_estimators=30, n_jobs=1)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no member cut short
        ens = fit_ensemble(tab, time_limit=1.5, metric="accuracy", candidates=gbm, stack=False, n_folds=2,
                           verbose=False)
    assert ens.score(tab.valid) > 0.8  # the prior scores 0.76


def test_folds_stay_at_five_when_the_rarest_class_has_fewer_than_eight_rows():
    # 7 rows of one race: 5 folds work, 8 cannot, and a roomy limit must not move there
    df = raw_adult()
    rare = pl.read_csv(path("adult_sample") / "adult.csv").filter(pl.col("race") == " Other").head(7)
    df = pl.concat([rare, df.filter(pl.col("race") != " Other")])  # all 7 among the training rows
    cats = [c for c in ADULT_CATS if c != "race"]
    tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=cats, cont_names=ADULT_CONTS,
                  y_names="race", splits=(np.arange(len(df) - 600), np.arange(len(df) - 600, len(df))))
    gbm = {"gbm": GBM("classification", learning_rate=0.3, n_estimators=30, n_jobs=1)}
    ens = fit_ensemble(tab, time_limit=600, metric="accuracy", candidates=gbm, stack=False, verbose=False)
    assert ens.members[0].n_folds == 5 and ens.report_["status"][-1] == "time limit 600 s, 5 shuffled folds"


def test_bad_candidates_and_a_quiet_net(tab, capfd):
    with pytest.raises(ParameterError, match=r"candidates \['g'\] are already bagged: give fit_ensemble the backend "
                                             r"itself"):
        fit_ensemble(tab, candidates={"g": BaggedModel(GBM("classification"))})
    reg = Tabular(raw_adult(), cat_names=ADULT_CATS, cont_names=["fnlwgt"], y_names="age",
                  splits=RandomSplitter(valid_pct=0.2, seed=42))
    with pytest.raises(ParameterError, match="for classes coded as numbers, build the Tabular with y_block='category'"):
        fit_ensemble(reg, candidates={"g": GBM("classification")})
    with pytest.raises(ParameterError, match=r"candidates: \['gbmm'\] is not a name of the default candidates "
                                             r"\(gbm, .*gbm_sub.*extra_trees.*\); name those"):
        fit_ensemble(tab, candidates=["gbmm", "extra_trees"])
    # the default candidates by name, beside one of one's own: fitted as given
    named = fit_ensemble(tab, candidates=["extra_trees", Candidate("own", GBM("classification", n_estimators=20,
                                                                             n_jobs=1))],
                         n_folds=3, stack=False, verbose=False)
    assert sorted(named.report_["model"].to_list()[:2]) == ["extra_trees", "own"]
    fitted = {m.name: m.model for m in named.members}
    assert type(fitted["extra_trees"]).__name__ == "ExtraTrees" and fitted["own"].n_estimators == 20
    # a backend fits quietly: the net prints no epoch table, inside an ensemble or on its own
    capfd.readouterr()
    TorchTabular("classification", epochs=1, layers=[8]).fit(tab.train)
    assert capfd.readouterr().out == ""


def test_default_folds_are_eight_unless_a_time_limit_leaves_too_little_for_them(tab):
    gbm = {"gbm": GBM("classification", learning_rate=0.3, n_estimators=30, n_jobs=1)}
    free = fit_ensemble(tab, metric="accuracy", candidates=gbm, stack=False, verbose=False)
    # a roomy limit: the first member, bagged on 5 folds, tells that everything fits with 8, and is bagged again
    roomy = fit_ensemble(tab, time_limit=600, metric="accuracy", candidates=gbm, stack=False, verbose=False)
    # a tight one: the first member keeps its 5 folds, the rest is skipped
    with pytest.warns(UserWarning, match="cut short"):
        tight = fit_ensemble(tab, time_limit=1e-3, metric="accuracy", candidates=candidates(), verbose=False)
    for ens, k in ((free, 8), (roomy, 8), (tight, 5)):
        bag = ens.members[0]
        assert bag.n_folds == k and len(bag.models_) == k
        assert sorted(np.unique(bag.folds_[0]).tolist()) == list(range(k))
        assert ens.report_["status"][-1].endswith(f", {k} shuffled folds")
    assert free.report_["status"][-1] == "time limit none, 8 shuffled folds"
    assert roomy.report_["status"][-1] == "time limit 600 s, 8 shuffled folds"
    assert roomy.report_["model"].to_list() == ["gbm", "weighted_ensemble", "total"]  # bagged again, listed once
    assert tight.report_["status"][-1] == "time limit 0.001 s, 5 shuffled folds"
    np.testing.assert_array_equal(roomy.members[0].oof_predictions_, free.members[0].oof_predictions_)
    with pytest.raises(ParameterError, match="n_folds=1 is not accepted"):
        fit_ensemble(tab, n_folds=1)


def test_export_with_procs_predicts_raw_rows_in_a_fresh_process(weighted, tab, tmp_path):
    ens = weighted
    file = ens.export(tmp_path / "adult_ensemble.pipekit")
    raw = raw_adult()[tab.valid_idx[:40]].drop("salary")  # raw rows as a user has them: no target, text values
    raw.write_csv(tmp_path / "rows.csv")
    expected = ens.predict(ens.process(raw))
    np.testing.assert_allclose(expected, ens.predict(tab.valid)[:40], rtol=1e-12)
    code = f"""
import sys, numpy as np, polars as pl
import pipekit
ens = pipekit.load({str(file)!r})
rows = pl.read_csv({str(tmp_path / 'rows.csv')!r})
np.save({str(tmp_path / 'out.npy')!r}, ens.predict(ens.process(rows)))
print(type(ens).__name__, [m.name for m in ens.members], list(ens.predict_labels(ens.process(rows.head(2)))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"WeightedEnsemble {[m.name for m in ens.members]}")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_weights_reproduced_from_the_out_of_fold_predictions_the_file_records(weighted, tab, tmp_path):
    """A fresh process reads the ensemble's file and selects again from the out-of-fold predictions and targets
    it records (no data at all): the same weights, so nothing outside the training rows chose them."""
    ens = weighted
    file = ens.export(tmp_path / "adult_ensemble.pipekit")
    code = f"""
import numpy as np
import pipekit
from pipekit.ensemble import WeightedEnsemble
ens = pipekit.load({str(file)!r})
y = np.asarray(ens.classes_)[ens.members[0].oof_targets_]
again = WeightedEnsemble(ens.members, metric=ens.metric, n_iter=ens.n_iter).fit_predictions(
    [m.oof_predictions_ for m in ens.members], y)
np.save({str(tmp_path / 'w.npy')!r}, np.stack([ens.weights_, again.weights_]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    loaded, refit = np.load(tmp_path / "w.npy")
    np.testing.assert_array_equal(loaded, ens.weights_)
    np.testing.assert_array_equal(refit, ens.weights_)
    assert len(ens.members[0].oof_targets_) == len(tab.train_idx)  # recorded for the training rows only


def test_second_layer_with_a_bagged_net_predicts_raw_rows_in_a_fresh_process(weighted, tab, tmp_path):
    """The stacking layer fit_ensemble may return (bagged members, one a tabular net with entity embeddings,
    a bagged meta-model reading their predictions and the inputs) exports with its procs and predicts raw
    rows identically after loading in a fresh process."""
    net = BaggedModel(TorchTabular("classification", layers=[20, 10], epochs=1, bs=128, seed=0), n_folds=3,
                      name="net").fit(tab.train)
    meta = BaggedModel(GBM("classification", learning_rate=0.1, num_leaves=7, n_estimators=100, n_jobs=1), n_folds=3)
    stack = StackingEnsemble(list(weighted.members) + [net], meta=meta, passthrough=True).fit(tab.train)
    assert stack.members_ is None and stack.fitted_members()[-1] is net
    file = stack.export(tmp_path / "stack.pipekit")
    raw = raw_adult()[tab.valid_idx[:60]].drop("salary")
    raw.write_csv(tmp_path / "rows.csv")
    expected = stack.predict(stack.process(raw))
    np.testing.assert_allclose(expected, stack.predict(tab.valid)[:60], rtol=1e-12)
    code = f"""
import numpy as np, polars as pl
import pipekit
ens = pipekit.load({str(file)!r})
np.save({str(tmp_path / 'out.npy')!r}, ens.predict(ens.process(pl.read_csv({str(tmp_path / 'rows.csv')!r}))))
print(type(ens).__name__, [m.name for m in ens.members])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"StackingEnsemble {[m.name for m in stack.members]}"
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_regression_on_bundled_data():
    """A regression set: the ensemble is never below its best member out of fold."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    data = load_diabetes(as_frame=True)
    df = pl.from_pandas(data.frame)
    tab = Tabular(df, procs=[FillMissing, Normalize], cont_names=list(data.feature_names), y_names="target",
                  y_block="regression", splits=RandomSplitter(valid_pct=0.2, seed=0))
    cands = [Candidate("gbm", GBM("regression", learning_rate=0.05, num_leaves=7, n_estimators=300, n_jobs=1)),
             Candidate("ridge", SklearnModel(Ridge(alpha=1.0), "regression"), 0.8, 0.2)]
    ens = fit_ensemble(tab, metric="rmse", candidates=cands, n_folds=3, verbose=False)
    rep = ens.report_
    oof = dict(zip(rep["model"], rep["oof_rmse"]))
    returned = rep.filter(pl.col("status") == "returned")["oof_rmse"][0]
    assert returned <= min(oof["gbm"], oof["ridge"]) + 1e-9
    assert ens.score(tab.valid, "rmse") < 70  # the target's standard deviation is about 77


def test_members_are_refitted_on_their_stopping_rows_when_time_allows(weighted, tab):
    # no time limit: every booster's fold models are fitted again on their stopping rows too, giving exactly
    # the bagged model that refits fold by fold
    rep = weighted.report_
    refit = dict(zip(rep["model"], rep["refit"]))
    assert refit["gbm"] is True and refit["extra_trees"] is None and refit["logistic"] is None
    gbm = next(m for m in weighted.members if m.name == "gbm")
    assert gbm.refit_stopped
    by_name = {c.name: c.model for c in candidates()}
    once = BaggedModel(by_name["gbm"], n_folds=3, name="gbm").fit(tab.train)
    np.testing.assert_array_equal(gbm.oof_predictions_, once.oof_predictions_)
    assert [m.n_estimators for m in gbm.models_] == [m.n_estimators for m in once.models_]
    # no time left: the first member keeps the fold models that stopped on their own rows
    with pytest.warns(UserWarning, match="cut short"):
        ens = fit_ensemble(tab, time_limit=1e-3, metric="accuracy", candidates=candidates(), n_folds=2, verbose=False)
    assert dict(zip(ens.report_["model"], ens.report_["refit"]))["gbm"] is False
    assert not ens.members[0].refit_stopped and all(m.early_stopping_rounds for m in ens.members[0].models_)
    with pytest.raises(ParameterError, match="already fitted on all their rows"):
        next(gbm.refit_folds(tab.train))


def test_the_net_does_not_pay_torchs_first_optimizer_inside_its_first_fold():
    """torch imports its compiler when a process builds its first optimizer; with a net among the candidates,
    fit_ensemble starts that import in the background (so the net's first fold does not project its bag too slow),
    and without one it imports nothing."""
    code = """
import sys, threading
from pipekit.backends import GBM
from pipekit.ensemble import Candidate, TorchTabular
from pipekit.ensemble.auto import _import_libraries
def settle():
    for t in threading.enumerate():
        if t is not threading.main_thread():
            t.join()
_import_libraries([Candidate("gbm", GBM("classification"))])
settle()
print("after gbm only:", "torch._dynamo" in sys.modules)
print("lightgbm now:", "lightgbm" in sys.modules)
_import_libraries([Candidate("gbm", GBM("classification")), Candidate("net", TorchTabular("classification"))])
settle()
print("after a net:", "torch._dynamo" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["after gbm only: False", "lightgbm now: True", "after a net: True"]


@pytest.mark.parametrize("kw, said", [({"cost": 0.0}, r"'g': cost=0.0 is not accepted; expected a number in \(0, inf\)"),
                                      ({"cost": -2.0}, r"'g': cost=-2.0 is not accepted"),
                                      ({"value": -1.0}, r"'g': value=-1.0 is not accepted; expected a number in \[0, 1\]"),
                                      ({"value": float("nan")}, r"'g': value=nan is not accepted"),
                                      ({"name": ""}, r"'': name='' is not accepted; expected a non-empty string")])
def test_a_candidate_with_a_value_or_cost_fit_ensemble_cannot_order_by_is_refused(kw, said):
    args = {"name": "g", "value": 1.0, "cost": 1.0} | kw
    with pytest.raises(ParameterError, match=r"Candidate " + said):
        Candidate(args.pop("name"), GBM("classification", n_estimators=20, n_jobs=1), **args)
    # the edges that make sense are taken: a candidate worth nothing is fitted last, not refused
    assert Candidate("free", GBM("classification"), value=0.0, cost=1e-6).value == 0.0


def test_the_time_limit_warning_says_what_each_kind_of_member_keeps(tab):
    trees = {"trees": ExtraTrees("classification", n_estimators=400, n_jobs=1)}
    with pytest.warns(UserWarning, match=r"cut short the fold models of trees \(3 of 3\): they keep the trees grown "
                                         r"by then") as caught:
        fit_ensemble(tab, time_limit=1e-3, metric="accuracy", candidates=trees, n_folds=3, stack=False, verbose=False)
    assert not any("rounds boosted" in str(w.message) for w in caught)
    gbm = {"gbm": GBM("classification", learning_rate=0.01, n_estimators=5000, n_jobs=1)}
    with pytest.warns(UserWarning, match=r"cut short the fold models of gbm \(3 of 3\): they keep the rounds boosted"):
        fit_ensemble(tab, time_limit=1e-3, metric="accuracy", candidates=gbm, n_folds=3, stack=False, verbose=False)


@pytest.mark.parametrize("fn", ["mean_squared_error", "mean_absolute_error", "r2_score"])
def test_a_scikit_learn_regression_function_is_refused_for_classes_as_its_name_is(tab, fn):
    """Scored on a classifier's labels, mean_squared_error is a number, and would choose the members; refused
    before any fit, as the name 'mse' is."""
    import sklearn.metrics as skm

    with pytest.raises(ParameterError, match=rf"metric '{fn}' is a regression metric but the task is "
                                             "'classification'"):
        fit_ensemble(tab, metric=getattr(skm, fn), candidates=candidates()[:1], n_folds=2, verbose=False)
    with pytest.raises(ParameterError, match="metric='mse' is a regression metric"):
        fit_ensemble(tab, metric="mse", candidates=candidates()[:1], n_folds=2, verbose=False)
    from pipekit.metrics import check_metric, get_metric  # a function of the task's own and any other pass

    check_metric(get_metric(skm.f1_score, "classification"), "classification", 2)

    def hits(y, p):
        return float(np.mean(y == p.argmax(1)))

    check_metric(get_metric(hits, "classification"), "classification", 2)


def test_raw_rows_given_to_an_ensemble_name_ens_process_which_a_fresh_process_has(weighted):
    """A loaded ensemble has no Tabular: the message names ens.predict(ens.process(df)) (tab.new(df) only as the
    way of the session that built it)."""

    with pytest.raises(DataError, match=r"missing from the data.*tab\.new\(df\), in the session that built it\).*"
                                        r"ens\.predict\(ens\.process\(df\)\)"):
        weighted.predict(raw_adult().head(5))
    assert weighted.predict(weighted.process(raw_adult().head(5))).shape == (5, 2)


def test_encode_y_of_a_processed_splits_codes_says_they_are_codes_not_labels(weighted, tab):
    """tab.valid.y holds the Tabular's class codes: encode_y takes labels, and says these are codes rather than
    that label 0 was never seen."""
    from pipekit.core import DataError

    codes = np.asarray(tab.valid.y)
    assert codes.dtype.kind in "iu"
    with pytest.raises(DataError, match=r"integer codes of the known classes \['<50k', '>=50k'\].*tab\.valid\.y.*"
                                        r"not labels"):
        weighted.encode_y(codes)
    labels = np.asarray(weighted.classes_)[codes]
    np.testing.assert_array_equal(weighted.encode_y(labels), codes)
    with pytest.raises(DataError, match=r"label 'maybe' \(row 0\) was not seen in training"):
        weighted.encode_y(np.array(["maybe"]))


def test_time_kept_for_the_second_layer_does_not_push_out_a_member_that_fits():
    import time

    from pipekit.ensemble.auto import Plan, default_candidates

    # rossmann at 120 s on a busy machine: gbm took 30 s, gbm_sub 44 s, and 46 s are left; extra trees are
    # expected to take 27 s (they took 14-15 s) and the second layer 72 s. Kept for a second layer that has
    # never beaten the weighted ensemble out of fold, those 46 s skipped the trees (RMSPE 0.1212 against 0.1178)
    cands = {c.name: c for c in default_candidates("regression")}
    plan = Plan(list(cands.values()), time_limit=120, start=time.perf_counter() - 74, stack=True, n_folds=5)
    plan.measured(cands["gbm"], 30.0)
    assert plan.reserve(cands["extra_trees"]) == 0 and plan.fits(cands["extra_trees"], plan.expected(cands["extra_trees"]))
    assert not plan.fits(cands["gbm_large"], plan.expected(cands["gbm_large"]))  # 69 s
    # a member worth less per second than the second layer still leaves it its time
    slow = Candidate("slow", GBM("regression"), value=0.1, cost=3.0)
    assert plan.reserve(slow) == pytest.approx(plan.stack_expected()) and plan.reserve(slow) > 0
    # the layer comes after every default member but CatBoost
    assert [c.name for c in plan.order() if plan.reserve(c) > 0] == (["catboost"] if "catboost" in cands else [])


def test_a_rare_class_gets_as_many_folds_as_its_rows_or_a_fix_that_exists(tab):
    raw = raw_adult()
    train = np.sort(np.asarray(tab.train_idx))

    def with_rare(k):  # the first k training rows relabelled as a class of their own
        rows = pl.Series(np.isin(np.arange(len(raw)), train[:k]))
        return Tabular(raw.with_columns(salary=pl.when(rows).then(pl.lit("rare")).otherwise(pl.col("salary"))),
                       procs=[Categorify, FillMissing, Normalize], cat_names=ADULT_CATS, cont_names=ADULT_CONTS,
                       y_names="salary", splits=(tab.train_idx, tab.valid_idx))

    gbm = {"gbm": GBM("classification", n_estimators=20, n_jobs=1)}
    # pipekit's number of folds (8 by default) comes down to the 3 rows of the rarest class
    ens = fit_ensemble(with_rare(3), candidates=gbm, stack=False, verbose=False)
    assert ens.members[0].n_folds == 3 and ens.report_["status"][-1] == "time limit none, 3 shuffled folds"
    # the caller's number is kept, and the error gives one that works
    with pytest.raises(DataError, match=r"the rarest class \('rare'\) has 3 training rows, fewer than n_folds=5; "
                                        r"give n_folds=3 or fewer"):
        fit_ensemble(with_rare(3), candidates=gbm, n_folds=5, stack=False, verbose=False)
    # no number of folds works for a class of one row: the fix is to drop or merge it
    with pytest.raises(DataError, match=r"the class 'rare' has 1 training row.*drop that row or merge the class with "
                                        r"another.*df.filter\(pl.col\('salary'\) != 'rare'\)"):
        fit_ensemble(with_rare(1), candidates=gbm, stack=False, verbose=False)
    # the same example from the ensembles fitted on the Tabular's rows, by the target column's name
    for ensemble in (StackingEnsemble([GBM("classification", n_estimators=5, n_jobs=1)]),
                     BaggedModel(GBM("classification", n_estimators=5, n_jobs=1))):
        with pytest.raises(DataError, match=r"df.filter\(pl.col\('salary'\) != 'rare'\)"):
            ensemble.fit(with_rare(1).train)


def test_a_frame_given_for_the_tabular_is_named_by_its_kind_and_shape():
    df = raw_adult().head(40)
    for frame, kind in ((df, "polars DataFrame"), (df.to_pandas(), "pandas DataFrame")):
        with pytest.raises(ParameterError) as e:
            fit_ensemble(frame)
        assert str(e.value).startswith(f"fit_ensemble: tab=a {kind} of shape (40, 15) is not accepted; expected a "
                                       "Tabular: Tabular(df, cat_names=..., cont_names=..., y_names=..., splits=...)")
