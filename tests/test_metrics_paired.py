"""paired_difference on adult's validation rows: a model against a weaker one, against itself and against a
refit on other seeds; rmse's direction; what it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from test_models_helpers import adult

from pipekit.backends import GBM, RandomForest
from pipekit.core import DataError, ParameterError
from pipekit.metrics import accuracy, paired_difference, rmse


@pytest.fixture(scope="module")
def preds():
    tr, va = adult(6000)
    gbm = GBM("classification", learning_rate=0.1, n_estimators=200, n_jobs=1, seed=0).fit(tr)
    gbm2 = GBM("classification", learning_rate=0.1, n_estimators=200, colsample=0.8, subsample=0.8, n_jobs=1,
               seed=1).fit(tr)
    stump = RandomForest("classification", n_estimators=5, max_depth=1, n_jobs=1, seed=0).fit(tr)
    y = np.asarray(va.y)  # the processed split holds the class codes
    return y, gbm.predict(va), gbm2.predict(va), stump.predict(va)


def test_a_gbm_beats_a_forest_of_stumps_by_more_than_the_rows_noise(preds):
    y, gbm, _, stump = preds
    d = paired_difference(accuracy, y, gbm, stump)
    assert d.n_rows == len(y) == 1200
    assert d.score_a == pytest.approx(accuracy.score(y, gbm)) and d.score_b == pytest.approx(accuracy.score(y, stump))
    assert d.difference > 0.05 and 0 < d.low < d.difference < d.high
    assert d.better == "a"
    assert paired_difference(accuracy, y, stump, gbm).better == "b"
    assert "a is better" in str(d) and "1200 rows" in str(d)


def test_two_gbms_that_differ_only_in_sampling_are_a_tie_and_a_model_ties_itself(preds):
    y, gbm, gbm2, _ = preds
    assert (gbm.argmax(1) != gbm2.argmax(1)).sum() > 10  # they disagree on some rows
    d = paired_difference(accuracy, y, gbm, gbm2)
    assert d.better is None and d.low < 0 < d.high
    assert abs(d.difference) < 0.01
    same = paired_difference(accuracy, y, gbm, gbm)
    assert (same.difference, same.low, same.high, same.better) == (0.0, 0.0, 0.0, None)


def test_the_interval_is_seeded_and_narrows_with_a_lower_level(preds):
    y, gbm, gbm2, _ = preds
    a = paired_difference(accuracy, y, gbm, gbm2, seed=3)
    assert a == paired_difference(accuracy, y, gbm, gbm2, seed=3)
    assert a != paired_difference(accuracy, y, gbm, gbm2, seed=4)
    narrow = paired_difference(accuracy, y, gbm, gbm2, seed=3, level=0.5)
    assert a.low < narrow.low <= narrow.high < a.high


def test_for_rmse_lower_is_better():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    close, far = y + rng.normal(scale=0.1, size=500), y + rng.normal(scale=1.0, size=500)
    d = paired_difference("rmse", y, close, far, task="regression")
    assert d.difference < 0 and d.high < 0 and d.better == "a"
    assert paired_difference(rmse, y, far, close).better == "b"


def test_it_refuses_rows_that_do_not_pair_and_a_name_without_a_task(preds):
    y, gbm, gbm2, _ = preds
    with pytest.raises(DataError, match="1200 targets, 1199 predictions of a, 1200 of b"):
        paired_difference(accuracy, y, gbm[1:], gbm2)
    with pytest.raises(DataError, match="0 targets"):
        paired_difference(accuracy, y[:0], gbm[:0], gbm2[:0])
    with pytest.raises(ParameterError, match="needs task="):
        paired_difference("accuracy", y, gbm, gbm2)
    with pytest.raises(ParameterError, match="n_resamples"):
        paired_difference(accuracy, y, gbm, gbm2, n_resamples=10)
    with pytest.raises(ParameterError, match="level"):
        paired_difference(accuracy, y, gbm, gbm2, level=1.0)
