"""Bagged members on real adult rows: out-of-fold predictions only from models that never saw the row, weights
and stacking chosen on training rows only, and bagged ensembles that load in a fresh process."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from test_models_helpers import adult_tab

from pipekit.backends import GBM, ExtraTrees, SklearnModel, as_data, load_model
from pipekit.core import DataError, ParameterError
from pipekit.ensemble import BaggedModel, StackingEnsemble, WeightedEnsemble
from pipekit.backends.data import rows_signature
from pipekit.ensemble.bagged import make_folds


def small_gbm(**kw):
    return GBM("classification", learning_rate=0.2, n_estimators=200, n_jobs=1, **kw)


@pytest.fixture(scope="module")
def tab():
    return adult_tab(4000)


@pytest.fixture(scope="module")
def bag(tab):
    return BaggedModel(small_gbm(), n_folds=3, seed=7).fit(tab.train, tab.valid)


def test_each_oof_prediction_comes_from_the_fold_model_that_never_saw_the_row(bag, tab):
    d = as_data(tab.train)
    n = len(d)
    assert bag.folds_.shape == (1, n) and set(np.unique(bag.folds_)) == {0, 1, 2}
    assert bag.oof_predictions_.shape == (n, 2) and np.allclose(bag.oof_predictions_.sum(1), 1)
    seen = np.zeros(n, dtype=int)
    for f in range(3):
        fit_idx, stop_idx, held = bag.fold_rows(f)
        # the fold model's rows (fitted on, stopped early on) and the rows it predicted are disjoint and cover all
        assert np.array_equal(held, np.flatnonzero(bag.folds_[0] == f))
        assert not (set(fit_idx) & set(held)) and not (set(stop_idx) & set(held)) and not (set(fit_idx) & set(stop_idx))
        assert len(fit_idx) + len(stop_idx) + len(held) == n and len(stop_idx) == round(0.1 * (n - len(held)))
        seen[held] += 1
        # every out-of-fold prediction is that fold model's prediction of the row ...
        np.testing.assert_array_equal(bag.models_[f].predict(d.take(held)), bag.oof_predictions_[held])
        # ... and that model is exactly what fitting on the other rows alone gives: stopped early on its stopping
        # rows, then fitted again on its fitting and stopping rows for the rounds kept (scaled by the rows added)
        stopped = bag.fold_model(f).fit(d.take(fit_idx), d.take(stop_idx))
        rounds = round(stopped.best_iteration_ * (len(fit_idx) + len(stop_idx)) / len(fit_idx))
        assert bag.models_[f].n_estimators == rounds and bag.models_[f].early_stopping_rounds is None
        refit = bag.fold_model(f).set_params(n_estimators=rounds, early_stopping_rounds=None).fit(
            d.take(np.sort(np.concatenate([fit_idx, stop_idx]))))
        np.testing.assert_array_equal(refit.predict(d.take(held)), bag.oof_predictions_[held])
    assert (seen == 1).all()
    # folds are stratified: each holds the classes in the proportions of the whole
    y = bag.oof_targets_
    for f in range(3):
        assert abs(y[bag.folds_[0] == f].mean() - y.mean()) < 0.01
    assert bag.oof_score_ == pytest.approx(np.mean(bag.oof_predictions_.argmax(1) == y))
    # new rows get the mean of the fold models
    v = tab.valid
    np.testing.assert_allclose(bag.predict(v), np.mean([m.predict(v) for m in bag.models_], axis=0))
    assert bag.valid_score_ == pytest.approx(bag.score(v)) and bag.valid_score_ > 0.8


def test_fold_models_side_by_side_in_threads_are_the_ones_fitted_one_at_a_time(bag, tab):
    # a model given two cores is bagged two fold models at once, each with one thread: the same fold models
    par = BaggedModel(GBM("classification", learning_rate=0.2, n_estimators=200, n_jobs=2), n_folds=3, seed=7)
    assert par.workers() == (2, 1) and bag.workers() == (1, None)
    assert BaggedModel(small_gbm(), n_jobs=3).workers() == (3, 1)
    assert BaggedModel(GBM("classification", n_jobs=4), n_folds=2, n_jobs=1).workers() == (1, None)
    par.fit(tab.train)
    assert [m.n_jobs for m in par.models_] == [1, 1, 1]
    np.testing.assert_array_equal(par.oof_predictions_, bag.oof_predictions_)
    for f in range(3):  # kept in fold order, whichever finished first
        assert par.models_[f].n_estimators == bag.models_[f].n_estimators
        np.testing.assert_array_equal(par.models_[f].predict(tab.valid), bag.models_[f].predict(tab.valid))
    # stopped after the first fold model: nothing half-fitted is left, and the threads are done
    import threading

    before = threading.active_count()
    started = []
    wide = BaggedModel(GBM("classification", learning_rate=0.2, n_estimators=200, n_jobs=2), n_folds=6, seed=7)
    fit_one = wide._fit_one
    wide._fit_one = lambda *a: started.append(a[2]) or fit_one(*a)  # type: ignore[method-assign]
    folds = wide.fit_folds(tab.train)
    next(folds)
    folds.close()
    assert not wide.is_fitted and threading.active_count() == before
    # a fold model starts only when the caller asks for the next one: stopping after the first waited only
    # for the one beside it, the other four never started
    assert sorted(started) == [0, 1]


def test_gbm_fold_models_side_by_side_cap_lightgbms_threads_for_the_process(tab, monkeypatch):
    # LightGBM keeps one thread count for the process, which each call sets: a served GBM predicting on all the
    # cores in another thread while fold models trained on one thread each crashed the process; while a bag fits
    # side by side the count is capped at the fold models' threads, and given back after
    import ctypes

    import lightgbm.basic

    def max_threads():
        n = ctypes.c_int(0)
        lightgbm.basic._LIB.LGBM_GetMaxThreads(ctypes.byref(n))
        return n.value

    seen = []
    fit = GBM._fit
    monkeypatch.setattr(GBM, "_fit", lambda self, *a: seen.append((self.n_jobs, max_threads())) or fit(self, *a))
    before = max_threads()
    BaggedModel(GBM("classification", n_estimators=20, n_jobs=2), n_folds=2, seed=7).fit(tab.train)
    assert len(seen) >= 2 and set(seen) == {(1, 1)} and max_threads() == before  # (the refits too)
    seen.clear()
    BaggedModel(GBM("classification", n_estimators=20, n_jobs=1), n_folds=2, seed=7).fit(tab.train)
    assert len(seen) >= 2 and set(seen) == {(1, before)}  # one at a time: nothing capped


def test_forests_fitted_in_threads_leave_the_warning_filters_as_they_were(tab):
    # warnings.catch_warnings in two fold threads put back each other's saved filter lists: a filter of pipekit's
    # stayed in the user's list after the fit
    import warnings

    from pipekit.backends import RandomForest

    def messages():
        return [f[1].pattern for f in warnings.filters if f[1] is not None]

    with warnings.catch_warnings():  # (this test's own change to the filters, undone after it)
        warnings.filterwarnings("ignore", message="a filter of the user's")
        for _ in range(3):
            BaggedModel(RandomForest("classification", n_estimators=8, seed=0, n_jobs=2), n_folds=4, seed=1).fit(
                tab.train)
            assert "a filter of the user's" in messages()
            with warnings.catch_warnings(record=True) as shown:  # the user's own warnings of that text still show
                warnings.simplefilter("always")
                warnings.warn("Some inputs do not have OOB scores: the user's", stacklevel=1)
                warnings.warn("Warm-start fitting without increasing n_estimators: the user's", stacklevel=1)
            assert len(shown) == 2


def test_plain_forest_fits_leave_the_users_forests_their_warnings(tab):
    # scikit-learn's forest fits its trees in worker threads that rebuild the filter list from each filter's pattern;
    # a rebuilt copy of pipekit's filter, put back by a worker after the fit, ignored the OOB warning of every forest
    # the user fitted afterwards (it happened in most runs of two plain fits)
    import warnings

    from sklearn.ensemble import RandomForestRegressor

    from pipekit.backends import RandomForest

    X = np.random.RandomState(0).rand(40, 3)

    def users_forest_warns():
        with warnings.catch_warnings(record=True) as shown:
            RandomForestRegressor(n_estimators=2, oob_score=True, random_state=0, n_jobs=1).fit(X, X[:, 0])
        return any("Some inputs do not have OOB scores" in str(w.message) for w in shown)

    with warnings.catch_warnings():
        assert users_forest_warns()
        for _ in range(4):
            RandomForest("classification", n_estimators=20, seed=0).fit(tab.train)
        assert users_forest_warns()


def test_a_time_limit_is_shared_by_the_fold_models_and_never_spoils_a_refit(bag, tab):
    import time

    # boosters so slow that each fold model would take minutes: each gets its share of the 3 s and stops there
    slow = GBM("classification", learning_rate=1e-4, n_estimators=200_000, early_stopping_rounds=10**6, n_jobs=2)
    timed = BaggedModel(slow, n_folds=4, seed=7, refit_stopped=False)
    t = time.perf_counter()
    ends = list(timed.fit_folds(tab.train, time_limit=3.0))
    took = time.perf_counter() - t
    assert len(ends) == 4 and took < 15 and timed.stopped_on_time_ == 4
    assert all(m.stopped_on_time_ and m.time_limit <= 3.0 and m.best_iteration_ >= 1 for m in timed.models_)
    d = as_data(tab.train)
    for f in range(4):  # still out of fold: each row predicted by the model that never saw it
        held = timed.fold_rows(f)[2]
        np.testing.assert_allclose(timed.models_[f].predict(d.take(held)), timed.oof_predictions_[held])
    # a refit the time would cut short is not made: the model stays as it was
    models, oof = list(timed.models_), timed.oof_predictions_.copy()
    list(timed.refit_folds(tab.train, time_limit=0.01))
    assert not timed.refit_stopped and timed.models_ == models and timed.stopped_on_time_ == 4
    np.testing.assert_array_equal(timed.oof_predictions_, oof)
    # a limit that does not bind, or a model that cannot stop on time, changes nothing
    roomy = BaggedModel(small_gbm(), n_folds=3, seed=7)
    list(roomy.fit_folds(tab.train, time_limit=600))
    assert roomy.stopped_on_time_ == 0
    np.testing.assert_array_equal(roomy.oof_predictions_, bag.oof_predictions_)
    # forests stop growing trees on time too: each fold model keeps the two trees it grew first (one thread)
    trees = BaggedModel(ExtraTrees("classification", n_estimators=20, n_jobs=1), n_folds=2)
    list(trees.fit_folds(tab.train, time_limit=1e-3))
    assert trees.stopped_on_time_ == 2 and all(len(m.model_.estimators_) == 2 for m in trees.models_)
    # and with time to spare they grow, a tenth at a time, the very trees one fit grows
    roomy_trees = BaggedModel(ExtraTrees("classification", n_estimators=20, n_jobs=1), n_folds=2)
    list(roomy_trees.fit_folds(tab.train, time_limit=600))
    free = BaggedModel(ExtraTrees("classification", n_estimators=20, n_jobs=1), n_folds=2).fit(tab.train)
    assert roomy_trees.stopped_on_time_ == 0 and len(roomy_trees.models_[0].model_.estimators_) == 20
    np.testing.assert_array_equal(roomy_trees.oof_predictions_, free.oof_predictions_)


def test_bagging_is_seeded_and_repeats_average_out_of_fold(bag, tab):
    again = BaggedModel(small_gbm(), n_folds=3, seed=7).fit(tab.train)
    np.testing.assert_array_equal(again.oof_predictions_, bag.oof_predictions_)
    other = BaggedModel(small_gbm(), n_folds=3, seed=8).fit(tab.train)
    assert not np.array_equal(other.folds_, bag.folds_)
    rep = BaggedModel(small_gbm(), n_folds=2, n_repeats=2, seed=7).fit(tab.train)
    d = as_data(tab.train)
    assert rep.folds_.shape == (2, len(d)) and len(rep.models_) == 4
    per_repeat = []
    for r in range(2):
        p = np.zeros_like(rep.oof_predictions_)
        for f in range(2):
            held = rep.fold_rows(f, r)[2]
            p[held] = rep.models_[r * 2 + f].predict(d.take(held))
        per_repeat.append(p)
    np.testing.assert_allclose(rep.oof_predictions_, np.mean(per_repeat, axis=0))
    # a model that does not stop early is fitted on every other row; fold models get their own seeds
    et = BaggedModel(ExtraTrees("classification", n_estimators=5, n_jobs=1, seed=3), n_folds=2).fit(tab.train)
    fit_idx, stop_idx, held = et.fold_rows(1)
    assert len(stop_idx) == 0 and len(fit_idx) + len(held) == len(d)
    assert [m.seed for m in et.models_] == [3, 4]


def test_bagged_model_bad_input_and_files(bag, tab, tmp_path):
    with pytest.raises(ParameterError, match="n_folds=1 is not accepted"):
        BaggedModel(small_gbm(), n_folds=1)
    with pytest.raises(ParameterError, match="model=.* is not accepted; expected a pipekit model"):
        BaggedModel("gbm")
    with pytest.raises(ParameterError, match="already bagged"):
        BaggedModel(bag)
    with pytest.raises(ParameterError, match="fold=3, repeat=0: this model has 3 folds"):
        bag.fold_rows(3)
    with pytest.raises(DataError, match=r"the rarest class \('b'\) has 2 training rows, fewer than n_folds=3; give "
                                        r"n_folds=2 or fewer"):
        make_folds(np.array(["a"] * 10 + ["b"] * 2), "classification", 3, 0)
    back = load_model(bag.export(tmp_path / "bag.pipekit"))
    assert isinstance(back, BaggedModel) and len(back.models_) == 3
    np.testing.assert_array_equal(back.predict(tab.valid), bag.predict(tab.valid))
    np.testing.assert_array_equal(back.folds_, bag.folds_)
    np.testing.assert_array_equal(back.oof_predictions_, bag.oof_predictions_)
    assert back.rows_signature_ == rows_signature(as_data(tab.train))
    assert not bag.clone().is_fitted and bag.clone().model.get_params() == bag.model.get_params()


def test_weighted_selects_on_out_of_fold_predictions_only(bag, tab):
    from sklearn.linear_model import LogisticRegression

    et = BaggedModel(ExtraTrees("classification", n_estimators=20, n_jobs=1), n_folds=3, seed=7, name="et").fit(
        tab.train)
    lr = BaggedModel(SklearnModel(LogisticRegression(max_iter=300), "classification"), n_folds=3, seed=7,
                     name="lr").fit(tab.train)
    members = [bag, et, lr]
    ens = WeightedEnsemble(members, n_iter=25).fit(tab.train)
    assert ens.selected_on_ == "out_of_fold"
    # the weights are those the recorded out-of-fold predictions give, whatever the validation rows hold
    again = WeightedEnsemble(members, n_iter=25).fit_predictions([m.oof_predictions_ for m in members],
                                                                 as_data(tab.train).y)
    np.testing.assert_array_equal(again.weights_, ens.weights_)
    np.testing.assert_array_equal(WeightedEnsemble(members, n_iter=25).fit().weights_, ens.weights_)
    assert ens.report_["accuracy"][-1] >= max(m.oof_score_ for m in members)
    assert ens.processor() is tab.processor
    # on other rows (the valid split) it selects on their predictions, as before
    assert WeightedEnsemble(members, n_iter=25).fit(tab.valid).selected_on_ == "data"
    # a member fitted on all training rows has no honest predictions for them: refused, not used
    plain = small_gbm().fit(tab.train)
    with pytest.raises(ParameterError, match=r"member\(s\) \['3:GBM'\] keep no out-of-fold predictions"):
        WeightedEnsemble(members + [plain]).fit(tab.train)
    with pytest.raises(ParameterError, match="keep no out-of-fold predictions"):
        WeightedEnsemble([plain]).fit()


def test_stacking_on_bagged_members_with_passthrough(bag, tab, tmp_path):
    et = BaggedModel(ExtraTrees("classification", n_estimators=20, n_jobs=1), n_folds=3, seed=7).fit(tab.train)
    meta = BaggedModel(GBM("classification", learning_rate=0.1, num_leaves=7, n_estimators=200, n_jobs=1), n_folds=3,
                       seed=7)
    stack = StackingEnsemble([bag, et], meta=meta, passthrough=True).fit(tab.train, tab.valid)
    assert stack.members_ is None and stack.fitted_members() == [bag, et]  # bagged members used, not refitted
    np.testing.assert_array_equal(stack.oob_predictions_[0], bag.oof_predictions_)
    # the meta-model reads the members' log-odds and the original inputs, categories kept categorical
    n_in = len(tab.train.xs.columns)
    assert stack.meta_model_.feature_names_ == [f"m{j}" for j in range(2 + n_in)]
    assert stack.meta_model_.cat_features_ == [f"m{2 + j}" for j, c in enumerate(tab.train.xs.columns)
                                               if c in tab.train.cat_names]
    # the stack keeps its own out-of-fold predictions (its bagged meta-model's), so it can be selected on them
    np.testing.assert_array_equal(stack.oof_predictions_, stack.meta_model_.oof_predictions_)
    assert WeightedEnsemble([stack], n_iter=3).fit(tab.train).selected_on_ == "out_of_fold"
    assert stack.score(tab.valid) > 0.8
    back = load_model(stack.export(tmp_path / "stack.pipekit"))
    np.testing.assert_allclose(back.predict(tab.valid), stack.predict(tab.valid), rtol=1e-12)
    with pytest.raises(ParameterError, match="not bagged on these training rows"):
        StackingEnsemble([bag], passthrough=True).fit(tab.valid)
    with pytest.raises(ParameterError, match="some members are fitted and some are not"):
        StackingEnsemble([bag, small_gbm()]).fit(tab.train)


def test_rows_signature_tells_rows_apart(tab):
    d = as_data(tab.train)
    assert rows_signature(d) == rows_signature(as_data(tab.train))
    assert rows_signature(d) != rows_signature(d.take(np.arange(len(d) - 1)))
    flipped = d.y.copy()
    flipped[0] = "<50k" if flipped[0] != "<50k" else ">=50k"
    assert rows_signature(d) != rows_signature(as_data(d, y=flipped))
    assert rows_signature(d) != rows_signature(d.with_xs(d.xs.with_columns(pl.col("age") + 1)))


def test_early_stopping_rows_are_stratified_and_never_take_a_class_out_of_training():
    """Adult rows predicting the work class, with 'Never-worked' down to 2 rows: with 2 folds each fold model
    trains on one of them. Its stopping rows are drawn class by class, so that row stays in its training rows
    (a random draw put it among the stopping rows for some seeds, and the booster could not score a class it
    never trained on), and every other class gives its share of them."""
    from pipekit.datasets import path

    df = pl.read_csv(path("adult_sample") / "adult.csv").with_columns(pl.col("workclass").str.strip_chars())
    df = pl.concat([df.filter(pl.col("workclass").is_in(["Private", "State-gov", "Self-emp-inc"])).head(400),
                    df.filter(pl.col("workclass") == "Never-worked").head(2)])
    data = as_data(df.select("age", "education-num", "hours-per-week"), y=df["workclass"])
    for seed in range(16):
        bag = BaggedModel(GBM("classification", n_estimators=20, n_jobs=1), n_folds=2, seed=seed).fit(data)
        assert bag.classes_.tolist() == ["Never-worked", "Private", "Self-emp-inc", "State-gov"]
        for f in range(2):
            fit_idx, stop_idx, held = bag.fold_rows(f)
            rest = np.concatenate([fit_idx, stop_idx])
            assert len(stop_idx) == round(0.1 * len(rest))
            for label in bag.classes_:
                in_rest = int((data.y[rest] == label).sum())
                in_stop = int((data.y[stop_idx] == label).sum())
                assert in_stop < in_rest  # each class keeps a training row
                if in_rest > 1:
                    assert abs(in_stop - 0.1 * in_rest) <= 1  # its share, rounded
            assert (data.y[fit_idx] == "Never-worked").sum() == 1 and (data.y[stop_idx] == "Never-worked").sum() == 0
        # the draw is seeded: the same seed gives the same rows
        again = BaggedModel(GBM("classification", n_estimators=20, n_jobs=1), n_folds=2, seed=seed).fit(data)
        assert all(np.array_equal(a, b) for a, b in zip(bag.fold_rows(1), again.fold_rows(1)))


def test_weights_selected_out_of_fold_without_data_keep_the_procs_the_members_were_bagged_with(bag, tab, tmp_path):
    """``WeightedEnsemble(bags).fit()`` sees no split, yet processes raw rows with the procs of the Tabular the
    members were bagged on, before and after loading in a fresh process; members that keep no procs give an
    error that says how to get them."""
    import subprocess
    import sys

    from pipekit.datasets import path

    trees = BaggedModel(ExtraTrees("classification", n_estimators=10, n_jobs=1), n_folds=3).fit(tab.train)
    assert bag.processor_ is tab.processor and trees.processor_ is tab.processor
    ens = WeightedEnsemble({"gbm": bag, "trees": trees}, n_iter=10).fit()
    assert ens.selected_on_ == "out_of_fold"
    raw = pl.read_csv(path("adult_sample") / "adult.csv").head(4000)[tab.valid_idx[:30]].drop("salary")
    raw.write_csv(tmp_path / "rows.csv")
    expected = ens.predict(ens.process(raw))
    np.testing.assert_allclose(expected, ens.predict(tab.valid)[:30], rtol=1e-12)
    assert load_model(bag.export(tmp_path / "bag.pipekit")).processor_.classes_ == tab.processor.classes_
    file = ens.export(tmp_path / "ens.pipekit")
    code = f"""
import numpy as np, polars as pl
import pipekit
ens = pipekit.load({str(file)!r})
np.save({str(tmp_path / 'out.npy')!r}, ens.predict(ens.process(pl.read_csv({str(tmp_path / 'rows.csv')!r}))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    # bagged on a bare frame: no procs anywhere, and the error says where they come from
    d = as_data(tab.train)
    bare = BaggedModel(small_gbm(), n_folds=3).fit(as_data(d.xs, y=d.y, cat_names=d.cat_names))
    assert bare.processor_ is None
    with pytest.raises(ParameterError, match=r"no member keeps the procs .* \(ens.fit\(tab.valid\), or ens.fit\(tab.train\) "
                                             r"with members bagged on it"):
        WeightedEnsemble([bare], n_iter=5).fit().process(raw)
