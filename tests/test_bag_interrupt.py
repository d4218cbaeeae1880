"""Ctrl-C during ``BaggedModel.fit`` with fold models fitting side by side in threads: the KeyboardInterrupt reaches
the caller at once, the fold models stop at their next boosting round, few trees or batch (their threads end), the
bag is left unfitted, and fitting it again gives what a fresh bag gives."""

from __future__ import annotations

import _thread
import threading
import time

import lightgbm
import numpy as np
import pytest
import sklearn.ensemble._forest as sk_forest
from test_models_helpers import adult_tab

import pipekit.learn.learner as learner
from pipekit.backends import GBM, RandomForest
from pipekit.backends import forest
from pipekit.ensemble import BaggedModel, TorchTabular
from pipekit.ensemble.bagged import FoldStop


@pytest.fixture(scope="module")
def tab():
    return adult_tab(4000)


def gbm_bag(n_jobs=2):
    return BaggedModel(GBM("classification", n_estimators=2500, learning_rate=0.01, early_stopping_rounds=None,
                           n_jobs=2), n_folds=2, n_jobs=n_jobs, seed=5)


def forest_bag(n_jobs=2):
    return BaggedModel(RandomForest("classification", n_estimators=1000, n_jobs=2), n_folds=2, n_jobs=n_jobs, seed=5)


def net_bag(n_jobs=2):
    return BaggedModel(TorchTabular("classification", layers=[32], epochs=10, bs=64), n_folds=2, n_jobs=n_jobs, seed=5)


#: each kind of bag, and where one unit of its fold models' work ends (a boosting round, a tree, a training batch);
#: these are the library's own, so the test times the old code and the new alike
KINDS = {"gbm": (gbm_bag, lightgbm.basic.Booster, "update"),
         "forest": (forest_bag, sk_forest, "_parallel_build_trees"),
         "net": (net_bag, learner.Learner, "_step")}


class Work:
    """Counts the units of work the fold models finish; ``fire_at``: the unit after which Ctrl-C comes (as
    ``_thread.interrupt_main``, what a Ctrl-C handled by another thread than the main one does)."""

    def __init__(self, owner, name, monkeypatch):
        self.lock, self.n, self.fire_at, self.signal_at, self.caught, self.after = threading.Lock(), 0, None, None, False, 0
        done = getattr(owner, name)

        def counted(*a, **kw):
            out = done(*a, **kw)
            with self.lock:
                self.n += 1
                self.after += self.caught
                fire = self.n == self.fire_at
            if fire:
                self.signal_at = time.perf_counter()
                _thread.interrupt_main()
            return out

        monkeypatch.setattr(owner, name, counted)


def threads_back(before, within=2.0):
    end = time.perf_counter() + within
    while threading.active_count() > before and time.perf_counter() < end:
        time.sleep(0.01)
    return threading.active_count()


@pytest.mark.parametrize("kind", list(KINDS))
def test_ctrl_c_stops_a_bag_of_fold_models_in_threads_at_once(kind, tab, monkeypatch):
    make, owner, name = KINDS[kind]
    work = Work(owner, name, monkeypatch)
    monkeypatch.setattr(forest, "STOP_EVERY", 0.25)  # a fold forest's steps, short beside its 4 s
    fresh = make()
    # both fold models side by side, in threads; fold nets one at a time (they share one seeded generator)
    assert fresh.workers()[0] == (1 if kind == "net" else 2)
    t = time.perf_counter()
    fresh.fit(tab.train)
    full_s, full_work = time.perf_counter() - t, work.n
    expected = fresh.predict(tab.valid)

    bag, before = make(), threading.active_count()
    work.n, work.fire_at = 0, 3  # Ctrl-C once the fold models are under way
    with pytest.raises(KeyboardInterrupt):
        bag.fit(tab.train)
    latency = time.perf_counter() - work.signal_at
    with work.lock:
        work.caught, work.fire_at = True, None
    # it reaches the caller at once, not once the fold models running are done
    assert latency < full_s / 4, (kind, latency, full_s)
    # their threads end at the fold models' next round, few trees or batch, not at their end
    assert threads_back(before) == before, kind
    assert work.after < full_work / 4, (kind, work.after, full_work)
    assert not bag.is_fitted
    bag.fit(tab.train)  # fitted again, it is what a fresh bag is
    np.testing.assert_array_equal(bag.predict(tab.valid), expected)


def test_a_fold_forest_grown_a_few_trees_at_a_time_is_the_forest_one_fit_grows(tab, monkeypatch):
    # in a bag's thread a forest grows its trees a few at a time, looking at the bag's stop signal between them
    one_fit = RandomForest("classification", n_estimators=60, n_jobs=1, seed=3)
    in_steps = one_fit.clone()
    in_steps._fold_stop = FoldStop()
    monkeypatch.setattr(forest, "STOP_EVERY", 0.0)  # two trees at a time
    in_steps.fit(tab.train)
    one_fit.fit(tab.train)
    np.testing.assert_array_equal(in_steps.predict(tab.valid), one_fit.predict(tab.valid))
    np.testing.assert_array_equal(in_steps.oob_predictions_, one_fit.oob_predictions_)


def test_an_error_in_one_fold_model_stops_the_other_and_waits_for_it(tab, monkeypatch):
    # a fold model that fails ends the bag's fit with its error: the fold model beside it stops at its next round
    # instead of boosting on to its end, and its thread has ended when the error reaches the caller
    rounds = {"n": 0}
    update = lightgbm.basic.Booster.update

    def failing(booster, *a, **kw):
        rounds["n"] += 1
        if rounds["n"] == 20:
            raise ValueError("a fold model failed")
        return update(booster, *a, **kw)

    monkeypatch.setattr(lightgbm.basic.Booster, "update", failing)
    before = threading.active_count()
    bag = gbm_bag()
    with pytest.raises(ValueError, match="a fold model failed"):
        bag.fit(tab.train)
    assert threading.active_count() == before and rounds["n"] < 100 and not bag.is_fitted
